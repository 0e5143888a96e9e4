//! Caller numbers: from what arrives in SIP to a validated E.164 number.
//!
//! Every call fraudwall sees names its caller in P-Asserted-Identity, Remote-Party-ID or From,
//! and carriers write the same subscriber in a dozen ways: `sip:+8613800138000@gw;user=phone`,
//! `tel:+86-138-0013-8000`, `sip:013800138000@10.0.0.1`, `%2B8613800138000`, `8613800138000`.
//! The blocklist is keyed by one canonical form, so this module turns any of them into an
//! [`E164`] (digits only, 1 to 15, country code first), or says why it cannot:
//!
//! | outcome | when |
//! |---|---|
//! | [`Caller::Number`] | a number the plan accepts |
//! | [`Caller::Anonymous`] | empty value, `anonymous`, `unknown`, `restricted`, `private`, `withheld`, `unavailable` (any case), any user `@anonymous.invalid` (RFC 3323) that is not a number (`sip:+12025550100@anonymous.invalid` is the number) |
//! | [`Caller::Decorated`] | invalid as presented, but a number once read leniently (`*672025550100`, `2025550100p123`, `+012025550100`): see [Lenient reading](#lenient-reading) |
//! | [`Caller::Invalid`] | letters, dial strings, `+0...`, wrong length, unreadable URI ([`InvalidReason`] says which), with no number behind them |
//!
//! Anonymous and invalid callers are never numbers, so they can never match a blocklist entry;
//! the proxy gives them an action of their own. A decorated caller is invalid too, except
//! that its lenient number is looked up: a listed one is acted on with reason `evasion`. `Privacy: id` is a header, not a value, so the
//! SIP layer decides it before calling here.
//!
//! # Example
//!
//! ```
//! use fraudwall::numbers::{Caller, InvalidReason, NumberingProfile};
//!
//! let cn = NumberingProfile::by_name("cn").expect("shipped profile");
//! let n = cn.normalize(b"sip:013800138000@10.0.0.1;user=phone").number().expect("a number");
//! assert_eq!(n.to_string(), "+8613800138000");
//! assert_eq!(cn.normalize(b"sip:anonymous@anonymous.invalid"), Caller::Anonymous);
//! assert_eq!(cn.normalize(b"sip:alice@example.com"), Caller::Invalid(InvalidReason::NotANumber));
//! // Blocklist prefixes (the part before `*`) land in the same key space:
//! assert_eq!(cn.normalize_prefix(b"0755").as_deref(), Ok(&b"86755"[..]));
//!
//! // Config may override the prefixes.
//! let au = NumberingProfile::by_name("generic")
//!     .expect("shipped profile")
//!     .with_international_prefixes(&["0011"])
//!     .expect("valid prefix");
//! assert_eq!(au.normalize(b"0011 44 7700 900123").number().map(|n| n.to_string()),
//!            Some("+447700900123".to_string()));
//! ```
//!
//! # Reading the value
//!
//! 1. Surrounding whitespace is dropped; given a `<...>` (a bracketed URI, or a whole
//!    name-addr `"Name" <sip:...>;tag=x`), only the URI inside is read. Empty means anonymous.
//! 2. Scheme, case-insensitive: `sip:`/`sips:` take the user part (before `@`, without a
//!    `:password`; URI parameters such as `;user=phone` or `;verstat=TN-Validation-Passed`
//!    and `?headers` follow the host and are ignored). `tel:` takes the body. Any other
//!    scheme (`mailto:`, `urn:`) is [`InvalidReason::MalformedUri`]. No scheme: a bare
//!    number, or `user@host` read like a SIP user part. `sip:host` with no user part is
//!    [`InvalidReason::Empty`] (unless it is `anonymous.invalid`); so is `tel:`.
//! 3. The user part is an RFC 3966 `telephone-subscriber`: the number, then `;`-parameters.
//!    User parameters (`;cpc=`, `;npdi`, `;rn=`, `;isub=`, `;ext=`) are ignored: the caller is
//!    the main number, never an extension. `;phone-context=+<digits>` is prepended to a local
//!    number (`tel:5550100;phone-context=+1212` is `+12125550100`); a domain context
//!    (`;phone-context=ims.mnc000.mcc460.3gppnetwork.org`, as IMS cores send) means "national
//!    number of this network" and the profile's rules apply.
//! 4. Percent-escapes are decoded while scanning (`%2B86...` is `+86...`), with no buffer.
//!    Visual separators `-` `.` `(` `)` and space are skipped anywhere. A `+` is accepted only
//!    before the first digit. Non-ASCII characters, raw UTF-8 or percent-escaped
//!    (`%EF%BC%91`), are folded: NFKC (fullwidth `０`–`９` and `＋`, superscript, circled and
//!    mathematical digits, fullwidth hyphen) and every script's decimal digits by value
//!    (Arabic-Indic `٠`–`٩`, Extended Arabic-Indic `۰`–`۹`, Devanagari, ...), so `＋１２０２…`
//!    and `٢٠٢…` are the numbers they show. Anything else (letters, `*`, `#`, other
//!    characters, non-UTF-8 bytes) is [`InvalidReason::NotANumber`].
//! 5. `sip:6788675309` (no user part, a host of digits only, as Asterisk writes the
//!    caller) is the number: such a host is no hostname or IPv4 address.
//!
//! # Lenient reading
//!
//! A fraudster who knows the list is keyed by E.164 decorates a listed number until the
//! strict rules above give up, counting on invalid callers being allowed. So a value the
//! strict rules call invalid is read once more, leniently:
//!
//! 1. the URI's user part (its host when it has none and the host has no dot), escapes
//!    decoded and digits folded as above;
//! 2. dialling codes at the start dropped, repeatedly: `*67`, `*82`, `*31#`, `#31#`;
//! 3. the number ends at a pause or parameter: `p`, `w`, `x` after a digit, `,` `;` `#`
//!    after a digit, `:` `?` `@`, `%00` or any control character;
//! 4. every other non-digit (letters, stray `*` `#` `+`, separators, unknown characters) is
//!    skipped;
//! 5. the digits are read: after a `+` as international, leading zeros dropped (`+0…`);
//!    else under the profile; else after an international prefix `011` or `00`, whatever
//!    the profile (`00…` under `nanp`); else under the profile with leading zeros (a trunk
//!    `0`) dropped. Bare digits are never read as international without a prefix, so a
//!    Chinese local `61234567` is no candidate for a `+61*` range.
//!
//! When that yields a number, the caller is [`Caller::Decorated`] with it as the `lenient`
//! candidate, else [`Caller::Invalid`]. The candidate is never a caller ID: the screen
//! (the `global` stage of `policy::Policy`) looks it up, and a matching entry more severe than the
//! invalid-caller action is acted on with reason `evasion`; no match, and the caller stays
//! invalid as before. **The rule, tested as a property (`tests/evasion_props.rs`, on the
//! normalizer and through the proxy core): no decoration of a listed number in the URI's
//! user part yields `allow`.**
//!
//! # Numbering plans
//!
//! International numbers (`+`, an international prefix, or a global `phone-context`) are
//! checked against the plans fraudwall knows, **whatever the profile**, so `+8613800138000`
//! is the same key under every profile:
//!
//! - **+86 (China)**: the national significant number (NSN) is a mobile `1[3-9]` + 9 digits;
//!   a geographic number, area code (`10` Beijing and `2x` two digits, all others three:
//!   `755` Shenzhen, `851` Guiyang) then a 7 or 8 digit subscriber not starting with 0; a
//!   service or short code (`1[0-2]` then 1 to 4 digits: 110, 119, 120, 122, 12315, 10086;
//!   `95` then 3 to 6 digits: 95555; `96` then 3 or 4 digits); or a nationwide `400`/`800`
//!   number (10 digits).
//!   A trunk 0 kept after the country code (`+86 0755...`, a common misconfiguration) is
//!   dropped, since no Chinese NSN starts with 0.
//! - **+1 (NANP)**: exactly 10 digits `NXX NXX XXXX`, N = 2..9.
//! - **any other country code**: 7 to 15 digits in all (7, not 8: Niue +683 and Tokelau +690
//!   have 4-digit subscriber numbers, and wangiri fraud comes from such ranges).
//! - never: a leading 0 after `+` (`+0...`), more than 15 digits.
//!
//! # Profiles: reading national numbers
//!
//! A profile only decides how digits written *without* `+` are read. The international
//! prefixes are tried first (longest first), then the trunk prefix, then the bare forms.
//!
//! | profile | country code | international prefixes | trunk | national forms read |
//! |---|---|---|---|---|
//! | `cn` | 86 | `00` | `0` | after trunk 0: mobiles and geographic numbers (`013800138000`, `01012345678`, `075512345678`); bare: mobiles (`13800138000`), service codes (`110`, `12315`, `95555`, `10086`), `400`/`800` numbers, and `86` + NSN (international without `+`, as Chinese trunks often send) |
//! | `nanp` | 1 | `011` | `1` | `2125550100`, `12125550100`, `(212) 555-0100` |
//! | `generic` | none | `00`, `011` | none | none: only `+`, an international prefix or a global `phone-context` |
//!
//! Both prefix lists come from config ([`NumberingProfile::with_international_prefixes`],
//! [`NumberingProfile::with_trunk_prefix`]); a setting that cannot work is a
//! [`ProfileConfigError`] that says how to fix it.
//!
//! **Service codes map to `+86` followed by the code**: `110` is `+86110`, `95555` is
//! `+8695555`, `4008123123` is `+864008123123`. These are not dialable E.164 numbers, but they
//! are what a caller ID showing the code normalizes to, so an operator protects them with
//! exact `allow` entries written either way (`110` under `cn`, or `+86110`).
//!
//! # Blocklist prefixes
//!
//! [`NumberingProfile::normalize_prefix`] reads the part of a blocklist entry before `*`
//! (`+8617012`, `008617012`, `017012`, `17012`, `0755`) to E.164 digits (`8617012`, `86755`),
//! by the same prefix rules but without length minimums (a prefix is incomplete by design);
//! only the maximum length of a known plan is checked. A bare national prefix is accepted
//! only where its kind is clear (under `cn`: starting with `1`, `95`, `96`, `400`, `800` or
//! `86`; under `nanp`: starting with 2..9): `755*` under `cn` could be a Shenzhen area code
//! missing its trunk 0 or a local number, so it is refused. So are a trunk prefix alone (`0*`)
//! and `+860*`: they would list a whole country, which takes an explicit `+86*`. Whenever
//! `normalize` reads a
//! bare number to `n`, `normalize_prefix` of the same text gives `n`'s digits (a property
//! test holds this), so exact entries and ranges share one key space. For `+<digits>` rows a
//! compiler can skip the URI scanning with [`E164::from_international`] (about 90
//! instructions), which applies the same plan checks as `normalize` and so gives the same key
//! (a plain [`E164::from_digits`] would key `+86075512345678` apart from the caller
//! `+8675512345678` it means, and accept numbers no caller can present).
//!
//! # Cost and memory
//!
//! `normalize` never allocates and never panics on any bytes (property-tested on arbitrary
//! input): percent-escapes are decoded byte by byte, digits collect in a 32-byte stack buffer
//! (more than 32 digits is [`InvalidReason::TooLong`] without looking further). It costs 280
//! (anonymous, letters) to 1,150 (`tel:` with a global `phone-context`) instructions per
//! value, about 700 for a typical `sip:+86...@host;user=phone`: tens of nanoseconds
//! (`cargo bench --bench numbers`). Folding runs only for bytes ≥ 0x80 and the lenient
//! reading only for invalid values, so neither costs a clean ASCII number anything. A counting-allocator test (`tests/numbers_alloc.rs`)
//! holds the no-allocation promise. A profile is a few dozen bytes plus one small `Vec` of
//! international prefixes, built once.
//!
//! # Quirks
//!
//! - A bare Chinese local number without area code (`61234567`) cannot be placed:
//!   [`InvalidReason::TooShort`]. A geographic number without trunk 0 (`75512345678`) is not
//!   read either (ambiguous with other forms), except with `;phone-context=+86`.
//! - `tel:0755...;phone-context=+86`: a trunk prefix under the profile's own country code is
//!   dropped, as some IMS cores write it.
//! - `sip:+8613800138000` (no `@host`) is read as a number, because a host never starts with
//!   `+`; `sip:10.0.0.1` is a host, so [`InvalidReason::Empty`].
//! - The `nanp` trunk prefix `1` equals its country code, so `12125550100` is the same number
//!   with or without it; NANP N11 codes (`911`, `411`) are not numbers (too short), since
//!   they never present as caller IDs and the FTC list carries them only as dirty rows.

pub mod country;
mod e164;
mod fold;
mod lenient;
mod plan;
mod profile;
mod scan;

pub use e164::{E164Error, E164};
pub use profile::{Caller, InvalidReason, NumberingProfile, ProfileConfigError, ProfileError};

#[cfg(test)]
mod tests;
