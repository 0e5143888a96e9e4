//! `normalize` is on the per-call hot path: it must never allocate, whatever the input.
//! A counting global allocator proves it for every form the normalization table uses.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fraudwall::numbers::{Caller, NumberingProfile};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread-local without destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INPUTS: &[&[u8]] = &[
    b"sip:+8613800138000@10.0.0.1;user=phone",
    b"\"Zhang San\" <sips:%2B8613800138000;cpc=ordinary@ims.example.cn:5061;user=phone>;tag=1",
    b"sip:013800138000@gw",
    b"tel:075512345678;phone-context=+86",
    b"tel:13800138000;phone-context=ims.mnc000.mcc460.3gppnetwork.org",
    b"tel:+1-212-555-0100;ext=12;verstat=TN-Validation-Passed",
    b"(212) 555-0100",
    b"0011 44 7700 900123",
    b"95555",
    b"sip:anonymous@anonymous.invalid",
    b"Restricted",
    b"",
    b"sip:alice@example.com",
    b"mailto:x@y",
    b"sip:%zz@h",
    b"+123456789012345678901234567890123456789",
    b"\xff\xfe\x00garbage",
    // Folded and lenient readings (issue 9): no allocation either.
    "sip:＋１２０２５５５０１００@x".as_bytes(),
    "sip:+٢٠٢٥٥٥٠١٠٠@x".as_bytes(),
    b"sip:%EF%BC%8B%EF%BC%91202555%EF%BC%90100@x",
    b"sip:*67*822025550100p123@x",
    b"sip:+012025550100%00@x",
    b"<sip:6788675309>",
    b"sip:#31#13800000001#@x",
];

#[test]
fn normalize_never_allocates() {
    let profiles: Vec<NumberingProfile> = NumberingProfile::NAMES
        .iter()
        .map(|n| NumberingProfile::by_name(n).expect("shipped profile"))
        .collect();
    // The counter itself works: one allocation is seen.
    let probe = ALLOCATIONS.with(Cell::get);
    let v: Vec<u8> = Vec::with_capacity(16);
    std::hint::black_box(&v);
    assert_eq!(ALLOCATIONS.with(Cell::get) - probe, 1);

    let mut outcomes = [0usize; 4];
    let before = ALLOCATIONS.with(Cell::get);
    for p in &profiles {
        for raw in INPUTS {
            let slot = match p.normalize(raw) {
                Caller::Number(_) => 0,
                Caller::Anonymous => 1,
                Caller::Invalid(_) => 2,
                Caller::Decorated { .. } => 3,
            };
            outcomes[slot] += 1;
        }
    }
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(allocations, 0, "normalize allocated {allocations} times");
    // Every outcome was exercised, so no path escaped the count.
    assert!(outcomes.iter().all(|&n| n > 0), "outcomes {outcomes:?}");
}
