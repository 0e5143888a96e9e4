//! Caller-number normalization on the hot path: ns per `normalize` for typical inputs.
//!
//! `cargo bench --bench numbers`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fraudwall::numbers::{NumberingProfile, E164};

fn normalize(c: &mut Criterion) {
    let cases: &[(&str, &str, &[u8])] = &[
        (
            "cn",
            "sip_e164_user_phone",
            b"sip:+8613800138000@10.0.0.1;user=phone",
        ),
        (
            "cn",
            "sip_national_mobile",
            b"sip:13800138000@10.0.0.1:5060",
        ),
        (
            "cn",
            "sip_trunk_landline",
            b"sip:075512345678@gw.example.cn;user=phone",
        ),
        (
            "cn",
            "sip_percent_encoded",
            b"sip:%2B8613800138000@ims.example.cn;user=phone",
        ),
        ("cn", "bare_service_code", b"95555"),
        (
            "nanp",
            "tel_visual_separators",
            b"tel:+1-212-555-0100;verstat=TN-Validation-Passed",
        ),
        (
            "nanp",
            "tel_phone_context",
            b"tel:555-0100;phone-context=+1-212",
        ),
        ("nanp", "bare_national", b"(212) 555-0100"),
        (
            "generic",
            "sip_anonymous",
            b"sip:anonymous@anonymous.invalid",
        ),
        ("generic", "invalid_letters", b"sip:alice@example.com"),
    ];
    let mut group = c.benchmark_group("normalize");
    for &(profile, name, raw) in cases {
        let p = NumberingProfile::by_name(profile).expect("shipped profile");
        group.bench_function(format!("{profile}/{name}"), |b| {
            b.iter(|| p.normalize(black_box(raw)))
        });
    }
    group.finish();

    let cn = NumberingProfile::by_name("cn").expect("shipped profile");
    c.bench_function("normalize_prefix/cn_trunk", |b| {
        b.iter(|| cn.normalize_prefix(black_box(b"017012")))
    });
    // The compiler's fast path for `+<digits>` rows.
    c.bench_function("from_international/cn_mobile", |b| {
        b.iter(|| E164::from_international(black_box(b"8613800138000")))
    });
}

criterion_group!(benches, normalize);
criterion_main!(benches);
