//! The country of a calling number, from its E.164 calling code.
//!
//! A call that enters from an international gateway may be labelled with its country of
//! origin (`policy.international_origin = "tag"`): the phone shows `Intl: Myanmar`, within
//! the 15-character display label. The table follows the ITU-T E.164 list of assigned
//! country codes (Annex to the ITU Operational Bulletin), with the North American Numbering
//! Plan's (+1) members told apart by area code and +7 split between Russia and Kazakhstan.
//!
//! ```
//! use fraudwall::numbers::country::country_of;
//! let c = country_of(b"959123456789").unwrap();
//! assert_eq!((c.iso, c.label()), ("MM", "Intl: Myanmar"));
//! assert_eq!(country_of(b"18765550100").unwrap().name, "Jamaica");
//! ```

/// A country (or non-geographic service) an E.164 calling code belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// The calling code digits, `"95"`; for NANP members the code and area code, `"1876"`.
    pub code: &'static str,
    /// ISO 3166-1 alpha-2 where there is one (`"MM"`), `"XX"` for non-geographic codes.
    pub iso: &'static str,
    /// English short name, `"Myanmar"`.
    pub name: &'static str,
    label: &'static str,
}

impl Country {
    /// The display label `Intl: <name>`, at most 15 characters (a short form for long
    /// names, else the ISO code).
    pub fn label(&self) -> &'static str {
        self.label
    }
}

/// The country of a number given as its E.164 digits without `+` (`b"959..."`): the longest
/// calling code that prefixes it. `None` for an unassigned code or non-digit input.
pub fn country_of(digits: &[u8]) -> Option<Country> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Longest first: a NANP area code (4 digits) before +1, 3-digit codes before 2 and 1.
    (1..=digits.len().min(4)).rev().find_map(|n| {
        let key = &digits[..n];
        TABLE
            .binary_search_by(|c| c.code.as_bytes().cmp(key))
            .ok()
            .map(|i| TABLE[i])
    })
}

/// Sorted by code (a test holds it so).
static TABLE: &[Country] = &[
    Country {
        code: "1",
        iso: "US",
        name: "United States",
        label: "Intl: USA",
    },
    Country {
        code: "1204",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1226",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1236",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1242",
        iso: "BS",
        name: "Bahamas",
        label: "Intl: Bahamas",
    },
    Country {
        code: "1246",
        iso: "BB",
        name: "Barbados",
        label: "Intl: Barbados",
    },
    Country {
        code: "1249",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1250",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1263",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1264",
        iso: "AI",
        name: "Anguilla",
        label: "Intl: Anguilla",
    },
    Country {
        code: "1268",
        iso: "AG",
        name: "Antigua",
        label: "Intl: Antigua",
    },
    Country {
        code: "1284",
        iso: "VG",
        name: "British Virgin Is",
        label: "Intl: BVI",
    },
    Country {
        code: "1289",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1306",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1340",
        iso: "VI",
        name: "US Virgin Islands",
        label: "Intl: USVI",
    },
    Country {
        code: "1343",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1345",
        iso: "KY",
        name: "Cayman Islands",
        label: "Intl: Cayman Is",
    },
    Country {
        code: "1354",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1365",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1367",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1368",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1382",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1403",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1416",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1418",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1428",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1431",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1437",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1438",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1441",
        iso: "BM",
        name: "Bermuda",
        label: "Intl: Bermuda",
    },
    Country {
        code: "1450",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1468",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1473",
        iso: "GD",
        name: "Grenada",
        label: "Intl: Grenada",
    },
    Country {
        code: "1474",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1506",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1514",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1519",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1548",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1579",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1581",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1584",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1587",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1600",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1604",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1613",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1639",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1647",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1649",
        iso: "TC",
        name: "Turks and Caicos",
        label: "Intl: TC",
    },
    Country {
        code: "1658",
        iso: "JM",
        name: "Jamaica",
        label: "Intl: Jamaica",
    },
    Country {
        code: "1664",
        iso: "MS",
        name: "Montserrat",
        label: "Intl: MS",
    },
    Country {
        code: "1670",
        iso: "MP",
        name: "Northern Mariana",
        label: "Intl: N Mariana",
    },
    Country {
        code: "1671",
        iso: "GU",
        name: "Guam",
        label: "Intl: Guam",
    },
    Country {
        code: "1672",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1683",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1684",
        iso: "AS",
        name: "American Samoa",
        label: "Intl: Am Samoa",
    },
    Country {
        code: "1705",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1709",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1721",
        iso: "SX",
        name: "Sint Maarten",
        label: "Intl: SX",
    },
    Country {
        code: "1742",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1753",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1758",
        iso: "LC",
        name: "Saint Lucia",
        label: "Intl: St Lucia",
    },
    Country {
        code: "1767",
        iso: "DM",
        name: "Dominica",
        label: "Intl: Dominica",
    },
    Country {
        code: "1778",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1780",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1782",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1784",
        iso: "VC",
        name: "Saint Vincent",
        label: "Intl: VC",
    },
    Country {
        code: "1787",
        iso: "PR",
        name: "Puerto Rico",
        label: "Intl: PR",
    },
    Country {
        code: "1807",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1809",
        iso: "DO",
        name: "Dominican Republic",
        label: "Intl: DO",
    },
    Country {
        code: "1819",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1825",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1829",
        iso: "DO",
        name: "Dominican Republic",
        label: "Intl: DO",
    },
    Country {
        code: "1849",
        iso: "DO",
        name: "Dominican Republic",
        label: "Intl: DO",
    },
    Country {
        code: "1867",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1868",
        iso: "TT",
        name: "Trinidad and Tobago",
        label: "Intl: Trinidad",
    },
    Country {
        code: "1869",
        iso: "KN",
        name: "Saint Kitts and Nevis",
        label: "Intl: St Kitts",
    },
    Country {
        code: "1873",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1876",
        iso: "JM",
        name: "Jamaica",
        label: "Intl: Jamaica",
    },
    Country {
        code: "1879",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1902",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1905",
        iso: "CA",
        name: "Canada",
        label: "Intl: Canada",
    },
    Country {
        code: "1939",
        iso: "PR",
        name: "Puerto Rico",
        label: "Intl: PR",
    },
    Country {
        code: "20",
        iso: "EG",
        name: "Egypt",
        label: "Intl: Egypt",
    },
    Country {
        code: "211",
        iso: "SS",
        name: "South Sudan",
        label: "Intl: S Sudan",
    },
    Country {
        code: "212",
        iso: "MA",
        name: "Morocco",
        label: "Intl: Morocco",
    },
    Country {
        code: "213",
        iso: "DZ",
        name: "Algeria",
        label: "Intl: Algeria",
    },
    Country {
        code: "216",
        iso: "TN",
        name: "Tunisia",
        label: "Intl: Tunisia",
    },
    Country {
        code: "218",
        iso: "LY",
        name: "Libya",
        label: "Intl: Libya",
    },
    Country {
        code: "220",
        iso: "GM",
        name: "Gambia",
        label: "Intl: Gambia",
    },
    Country {
        code: "221",
        iso: "SN",
        name: "Senegal",
        label: "Intl: Senegal",
    },
    Country {
        code: "222",
        iso: "MR",
        name: "Mauritania",
        label: "Intl: MR",
    },
    Country {
        code: "223",
        iso: "ML",
        name: "Mali",
        label: "Intl: Mali",
    },
    Country {
        code: "224",
        iso: "GN",
        name: "Guinea",
        label: "Intl: Guinea",
    },
    Country {
        code: "225",
        iso: "CI",
        name: "Cote d'Ivoire",
        label: "Intl: CI",
    },
    Country {
        code: "226",
        iso: "BF",
        name: "Burkina Faso",
        label: "Intl: BF",
    },
    Country {
        code: "227",
        iso: "NE",
        name: "Niger",
        label: "Intl: Niger",
    },
    Country {
        code: "228",
        iso: "TG",
        name: "Togo",
        label: "Intl: Togo",
    },
    Country {
        code: "229",
        iso: "BJ",
        name: "Benin",
        label: "Intl: Benin",
    },
    Country {
        code: "230",
        iso: "MU",
        name: "Mauritius",
        label: "Intl: Mauritius",
    },
    Country {
        code: "231",
        iso: "LR",
        name: "Liberia",
        label: "Intl: Liberia",
    },
    Country {
        code: "232",
        iso: "SL",
        name: "Sierra Leone",
        label: "Intl: SL",
    },
    Country {
        code: "233",
        iso: "GH",
        name: "Ghana",
        label: "Intl: Ghana",
    },
    Country {
        code: "234",
        iso: "NG",
        name: "Nigeria",
        label: "Intl: Nigeria",
    },
    Country {
        code: "235",
        iso: "TD",
        name: "Chad",
        label: "Intl: Chad",
    },
    Country {
        code: "236",
        iso: "CF",
        name: "Central African Republic",
        label: "Intl: CAR",
    },
    Country {
        code: "237",
        iso: "CM",
        name: "Cameroon",
        label: "Intl: Cameroon",
    },
    Country {
        code: "238",
        iso: "CV",
        name: "Cape Verde",
        label: "Intl: CV",
    },
    Country {
        code: "239",
        iso: "ST",
        name: "Sao Tome and Principe",
        label: "Intl: Sao Tome",
    },
    Country {
        code: "240",
        iso: "GQ",
        name: "Equatorial Guinea",
        label: "Intl: Eq Guinea",
    },
    Country {
        code: "241",
        iso: "GA",
        name: "Gabon",
        label: "Intl: Gabon",
    },
    Country {
        code: "242",
        iso: "CG",
        name: "Congo",
        label: "Intl: Congo",
    },
    Country {
        code: "243",
        iso: "CD",
        name: "DR Congo",
        label: "Intl: DR Congo",
    },
    Country {
        code: "244",
        iso: "AO",
        name: "Angola",
        label: "Intl: Angola",
    },
    Country {
        code: "245",
        iso: "GW",
        name: "Guinea-Bissau",
        label: "Intl: GW",
    },
    Country {
        code: "246",
        iso: "IO",
        name: "Diego Garcia",
        label: "Intl: IO",
    },
    Country {
        code: "247",
        iso: "AC",
        name: "Ascension",
        label: "Intl: Ascension",
    },
    Country {
        code: "248",
        iso: "SC",
        name: "Seychelles",
        label: "Intl: SC",
    },
    Country {
        code: "249",
        iso: "SD",
        name: "Sudan",
        label: "Intl: Sudan",
    },
    Country {
        code: "250",
        iso: "RW",
        name: "Rwanda",
        label: "Intl: Rwanda",
    },
    Country {
        code: "251",
        iso: "ET",
        name: "Ethiopia",
        label: "Intl: Ethiopia",
    },
    Country {
        code: "252",
        iso: "SO",
        name: "Somalia",
        label: "Intl: Somalia",
    },
    Country {
        code: "253",
        iso: "DJ",
        name: "Djibouti",
        label: "Intl: Djibouti",
    },
    Country {
        code: "254",
        iso: "KE",
        name: "Kenya",
        label: "Intl: Kenya",
    },
    Country {
        code: "255",
        iso: "TZ",
        name: "Tanzania",
        label: "Intl: Tanzania",
    },
    Country {
        code: "256",
        iso: "UG",
        name: "Uganda",
        label: "Intl: Uganda",
    },
    Country {
        code: "257",
        iso: "BI",
        name: "Burundi",
        label: "Intl: Burundi",
    },
    Country {
        code: "258",
        iso: "MZ",
        name: "Mozambique",
        label: "Intl: MZ",
    },
    Country {
        code: "260",
        iso: "ZM",
        name: "Zambia",
        label: "Intl: Zambia",
    },
    Country {
        code: "261",
        iso: "MG",
        name: "Madagascar",
        label: "Intl: MG",
    },
    Country {
        code: "262",
        iso: "RE",
        name: "Reunion",
        label: "Intl: Reunion",
    },
    Country {
        code: "263",
        iso: "ZW",
        name: "Zimbabwe",
        label: "Intl: Zimbabwe",
    },
    Country {
        code: "264",
        iso: "NA",
        name: "Namibia",
        label: "Intl: Namibia",
    },
    Country {
        code: "265",
        iso: "MW",
        name: "Malawi",
        label: "Intl: Malawi",
    },
    Country {
        code: "266",
        iso: "LS",
        name: "Lesotho",
        label: "Intl: Lesotho",
    },
    Country {
        code: "267",
        iso: "BW",
        name: "Botswana",
        label: "Intl: Botswana",
    },
    Country {
        code: "268",
        iso: "SZ",
        name: "Eswatini",
        label: "Intl: Eswatini",
    },
    Country {
        code: "269",
        iso: "KM",
        name: "Comoros",
        label: "Intl: Comoros",
    },
    Country {
        code: "27",
        iso: "ZA",
        name: "South Africa",
        label: "Intl: S Africa",
    },
    Country {
        code: "290",
        iso: "SH",
        name: "Saint Helena",
        label: "Intl: St Helena",
    },
    Country {
        code: "291",
        iso: "ER",
        name: "Eritrea",
        label: "Intl: Eritrea",
    },
    Country {
        code: "297",
        iso: "AW",
        name: "Aruba",
        label: "Intl: Aruba",
    },
    Country {
        code: "298",
        iso: "FO",
        name: "Faroe Islands",
        label: "Intl: Faroe Is",
    },
    Country {
        code: "299",
        iso: "GL",
        name: "Greenland",
        label: "Intl: Greenland",
    },
    Country {
        code: "30",
        iso: "GR",
        name: "Greece",
        label: "Intl: Greece",
    },
    Country {
        code: "31",
        iso: "NL",
        name: "Netherlands",
        label: "Intl: NL",
    },
    Country {
        code: "32",
        iso: "BE",
        name: "Belgium",
        label: "Intl: Belgium",
    },
    Country {
        code: "33",
        iso: "FR",
        name: "France",
        label: "Intl: France",
    },
    Country {
        code: "34",
        iso: "ES",
        name: "Spain",
        label: "Intl: Spain",
    },
    Country {
        code: "350",
        iso: "GI",
        name: "Gibraltar",
        label: "Intl: Gibraltar",
    },
    Country {
        code: "351",
        iso: "PT",
        name: "Portugal",
        label: "Intl: Portugal",
    },
    Country {
        code: "352",
        iso: "LU",
        name: "Luxembourg",
        label: "Intl: LU",
    },
    Country {
        code: "353",
        iso: "IE",
        name: "Ireland",
        label: "Intl: Ireland",
    },
    Country {
        code: "354",
        iso: "IS",
        name: "Iceland",
        label: "Intl: Iceland",
    },
    Country {
        code: "355",
        iso: "AL",
        name: "Albania",
        label: "Intl: Albania",
    },
    Country {
        code: "356",
        iso: "MT",
        name: "Malta",
        label: "Intl: Malta",
    },
    Country {
        code: "357",
        iso: "CY",
        name: "Cyprus",
        label: "Intl: Cyprus",
    },
    Country {
        code: "358",
        iso: "FI",
        name: "Finland",
        label: "Intl: Finland",
    },
    Country {
        code: "359",
        iso: "BG",
        name: "Bulgaria",
        label: "Intl: Bulgaria",
    },
    Country {
        code: "36",
        iso: "HU",
        name: "Hungary",
        label: "Intl: Hungary",
    },
    Country {
        code: "370",
        iso: "LT",
        name: "Lithuania",
        label: "Intl: Lithuania",
    },
    Country {
        code: "371",
        iso: "LV",
        name: "Latvia",
        label: "Intl: Latvia",
    },
    Country {
        code: "372",
        iso: "EE",
        name: "Estonia",
        label: "Intl: Estonia",
    },
    Country {
        code: "373",
        iso: "MD",
        name: "Moldova",
        label: "Intl: Moldova",
    },
    Country {
        code: "374",
        iso: "AM",
        name: "Armenia",
        label: "Intl: Armenia",
    },
    Country {
        code: "375",
        iso: "BY",
        name: "Belarus",
        label: "Intl: Belarus",
    },
    Country {
        code: "376",
        iso: "AD",
        name: "Andorra",
        label: "Intl: Andorra",
    },
    Country {
        code: "377",
        iso: "MC",
        name: "Monaco",
        label: "Intl: Monaco",
    },
    Country {
        code: "378",
        iso: "SM",
        name: "San Marino",
        label: "Intl: SM",
    },
    Country {
        code: "379",
        iso: "VA",
        name: "Vatican",
        label: "Intl: Vatican",
    },
    Country {
        code: "380",
        iso: "UA",
        name: "Ukraine",
        label: "Intl: Ukraine",
    },
    Country {
        code: "381",
        iso: "RS",
        name: "Serbia",
        label: "Intl: Serbia",
    },
    Country {
        code: "382",
        iso: "ME",
        name: "Montenegro",
        label: "Intl: ME",
    },
    Country {
        code: "383",
        iso: "XK",
        name: "Kosovo",
        label: "Intl: Kosovo",
    },
    Country {
        code: "385",
        iso: "HR",
        name: "Croatia",
        label: "Intl: Croatia",
    },
    Country {
        code: "386",
        iso: "SI",
        name: "Slovenia",
        label: "Intl: Slovenia",
    },
    Country {
        code: "387",
        iso: "BA",
        name: "Bosnia and Herzegovina",
        label: "Intl: Bosnia",
    },
    Country {
        code: "389",
        iso: "MK",
        name: "North Macedonia",
        label: "Intl: MK",
    },
    Country {
        code: "39",
        iso: "IT",
        name: "Italy",
        label: "Intl: Italy",
    },
    Country {
        code: "40",
        iso: "RO",
        name: "Romania",
        label: "Intl: Romania",
    },
    Country {
        code: "41",
        iso: "CH",
        name: "Switzerland",
        label: "Intl: CH",
    },
    Country {
        code: "420",
        iso: "CZ",
        name: "Czechia",
        label: "Intl: Czechia",
    },
    Country {
        code: "421",
        iso: "SK",
        name: "Slovakia",
        label: "Intl: Slovakia",
    },
    Country {
        code: "423",
        iso: "LI",
        name: "Liechtenstein",
        label: "Intl: LI",
    },
    Country {
        code: "43",
        iso: "AT",
        name: "Austria",
        label: "Intl: Austria",
    },
    Country {
        code: "44",
        iso: "GB",
        name: "United Kingdom",
        label: "Intl: UK",
    },
    Country {
        code: "45",
        iso: "DK",
        name: "Denmark",
        label: "Intl: Denmark",
    },
    Country {
        code: "46",
        iso: "SE",
        name: "Sweden",
        label: "Intl: Sweden",
    },
    Country {
        code: "47",
        iso: "NO",
        name: "Norway",
        label: "Intl: Norway",
    },
    Country {
        code: "48",
        iso: "PL",
        name: "Poland",
        label: "Intl: Poland",
    },
    Country {
        code: "49",
        iso: "DE",
        name: "Germany",
        label: "Intl: Germany",
    },
    Country {
        code: "500",
        iso: "FK",
        name: "Falkland Islands",
        label: "Intl: Falklands",
    },
    Country {
        code: "501",
        iso: "BZ",
        name: "Belize",
        label: "Intl: Belize",
    },
    Country {
        code: "502",
        iso: "GT",
        name: "Guatemala",
        label: "Intl: Guatemala",
    },
    Country {
        code: "503",
        iso: "SV",
        name: "El Salvador",
        label: "Intl: SV",
    },
    Country {
        code: "504",
        iso: "HN",
        name: "Honduras",
        label: "Intl: Honduras",
    },
    Country {
        code: "505",
        iso: "NI",
        name: "Nicaragua",
        label: "Intl: Nicaragua",
    },
    Country {
        code: "506",
        iso: "CR",
        name: "Costa Rica",
        label: "Intl: CR",
    },
    Country {
        code: "507",
        iso: "PA",
        name: "Panama",
        label: "Intl: Panama",
    },
    Country {
        code: "508",
        iso: "PM",
        name: "Saint Pierre and Miquelon",
        label: "Intl: St Pierre",
    },
    Country {
        code: "509",
        iso: "HT",
        name: "Haiti",
        label: "Intl: Haiti",
    },
    Country {
        code: "51",
        iso: "PE",
        name: "Peru",
        label: "Intl: Peru",
    },
    Country {
        code: "52",
        iso: "MX",
        name: "Mexico",
        label: "Intl: Mexico",
    },
    Country {
        code: "53",
        iso: "CU",
        name: "Cuba",
        label: "Intl: Cuba",
    },
    Country {
        code: "54",
        iso: "AR",
        name: "Argentina",
        label: "Intl: Argentina",
    },
    Country {
        code: "55",
        iso: "BR",
        name: "Brazil",
        label: "Intl: Brazil",
    },
    Country {
        code: "56",
        iso: "CL",
        name: "Chile",
        label: "Intl: Chile",
    },
    Country {
        code: "57",
        iso: "CO",
        name: "Colombia",
        label: "Intl: Colombia",
    },
    Country {
        code: "58",
        iso: "VE",
        name: "Venezuela",
        label: "Intl: Venezuela",
    },
    Country {
        code: "590",
        iso: "GP",
        name: "Guadeloupe",
        label: "Intl: GP",
    },
    Country {
        code: "591",
        iso: "BO",
        name: "Bolivia",
        label: "Intl: Bolivia",
    },
    Country {
        code: "592",
        iso: "GY",
        name: "Guyana",
        label: "Intl: Guyana",
    },
    Country {
        code: "593",
        iso: "EC",
        name: "Ecuador",
        label: "Intl: Ecuador",
    },
    Country {
        code: "594",
        iso: "GF",
        name: "French Guiana",
        label: "Intl: GF",
    },
    Country {
        code: "595",
        iso: "PY",
        name: "Paraguay",
        label: "Intl: Paraguay",
    },
    Country {
        code: "596",
        iso: "MQ",
        name: "Martinique",
        label: "Intl: MQ",
    },
    Country {
        code: "597",
        iso: "SR",
        name: "Suriname",
        label: "Intl: Suriname",
    },
    Country {
        code: "598",
        iso: "UY",
        name: "Uruguay",
        label: "Intl: Uruguay",
    },
    Country {
        code: "599",
        iso: "CW",
        name: "Curacao",
        label: "Intl: Curacao",
    },
    Country {
        code: "60",
        iso: "MY",
        name: "Malaysia",
        label: "Intl: Malaysia",
    },
    Country {
        code: "61",
        iso: "AU",
        name: "Australia",
        label: "Intl: Australia",
    },
    Country {
        code: "62",
        iso: "ID",
        name: "Indonesia",
        label: "Intl: Indonesia",
    },
    Country {
        code: "63",
        iso: "PH",
        name: "Philippines",
        label: "Intl: PH",
    },
    Country {
        code: "64",
        iso: "NZ",
        name: "New Zealand",
        label: "Intl: NZ",
    },
    Country {
        code: "65",
        iso: "SG",
        name: "Singapore",
        label: "Intl: Singapore",
    },
    Country {
        code: "66",
        iso: "TH",
        name: "Thailand",
        label: "Intl: Thailand",
    },
    Country {
        code: "670",
        iso: "TL",
        name: "Timor-Leste",
        label: "Intl: TL",
    },
    Country {
        code: "672",
        iso: "NF",
        name: "Norfolk Island",
        label: "Intl: NF",
    },
    Country {
        code: "673",
        iso: "BN",
        name: "Brunei",
        label: "Intl: Brunei",
    },
    Country {
        code: "674",
        iso: "NR",
        name: "Nauru",
        label: "Intl: Nauru",
    },
    Country {
        code: "675",
        iso: "PG",
        name: "Papua New Guinea",
        label: "Intl: PNG",
    },
    Country {
        code: "676",
        iso: "TO",
        name: "Tonga",
        label: "Intl: Tonga",
    },
    Country {
        code: "677",
        iso: "SB",
        name: "Solomon Islands",
        label: "Intl: SB",
    },
    Country {
        code: "678",
        iso: "VU",
        name: "Vanuatu",
        label: "Intl: Vanuatu",
    },
    Country {
        code: "679",
        iso: "FJ",
        name: "Fiji",
        label: "Intl: Fiji",
    },
    Country {
        code: "680",
        iso: "PW",
        name: "Palau",
        label: "Intl: Palau",
    },
    Country {
        code: "681",
        iso: "WF",
        name: "Wallis and Futuna",
        label: "Intl: Wallis",
    },
    Country {
        code: "682",
        iso: "CK",
        name: "Cook Islands",
        label: "Intl: Cook Is",
    },
    Country {
        code: "683",
        iso: "NU",
        name: "Niue",
        label: "Intl: Niue",
    },
    Country {
        code: "685",
        iso: "WS",
        name: "Samoa",
        label: "Intl: Samoa",
    },
    Country {
        code: "686",
        iso: "KI",
        name: "Kiribati",
        label: "Intl: Kiribati",
    },
    Country {
        code: "687",
        iso: "NC",
        name: "New Caledonia",
        label: "Intl: NC",
    },
    Country {
        code: "688",
        iso: "TV",
        name: "Tuvalu",
        label: "Intl: Tuvalu",
    },
    Country {
        code: "689",
        iso: "PF",
        name: "French Polynesia",
        label: "Intl: Polynesia",
    },
    Country {
        code: "690",
        iso: "TK",
        name: "Tokelau",
        label: "Intl: Tokelau",
    },
    Country {
        code: "691",
        iso: "FM",
        name: "Micronesia",
        label: "Intl: FM",
    },
    Country {
        code: "692",
        iso: "MH",
        name: "Marshall Islands",
        label: "Intl: MH",
    },
    Country {
        code: "7",
        iso: "RU",
        name: "Russia",
        label: "Intl: Russia",
    },
    Country {
        code: "76",
        iso: "KZ",
        name: "Kazakhstan",
        label: "Intl: KZ",
    },
    Country {
        code: "77",
        iso: "KZ",
        name: "Kazakhstan",
        label: "Intl: KZ",
    },
    Country {
        code: "800",
        iso: "XX",
        name: "Intl Freephone",
        label: "Intl: Freephone",
    },
    Country {
        code: "808",
        iso: "XX",
        name: "Intl Shared Cost",
        label: "Intl: XX",
    },
    Country {
        code: "81",
        iso: "JP",
        name: "Japan",
        label: "Intl: Japan",
    },
    Country {
        code: "82",
        iso: "KR",
        name: "South Korea",
        label: "Intl: S Korea",
    },
    Country {
        code: "84",
        iso: "VN",
        name: "Vietnam",
        label: "Intl: Vietnam",
    },
    Country {
        code: "850",
        iso: "KP",
        name: "North Korea",
        label: "Intl: N Korea",
    },
    Country {
        code: "852",
        iso: "HK",
        name: "Hong Kong",
        label: "Intl: Hong Kong",
    },
    Country {
        code: "853",
        iso: "MO",
        name: "Macao",
        label: "Intl: Macao",
    },
    Country {
        code: "855",
        iso: "KH",
        name: "Cambodia",
        label: "Intl: Cambodia",
    },
    Country {
        code: "856",
        iso: "LA",
        name: "Laos",
        label: "Intl: Laos",
    },
    Country {
        code: "86",
        iso: "CN",
        name: "China",
        label: "Intl: China",
    },
    Country {
        code: "870",
        iso: "XX",
        name: "Inmarsat",
        label: "Intl: Inmarsat",
    },
    Country {
        code: "878",
        iso: "XX",
        name: "Universal Personal",
        label: "Intl: UPT",
    },
    Country {
        code: "880",
        iso: "BD",
        name: "Bangladesh",
        label: "Intl: BD",
    },
    Country {
        code: "881",
        iso: "XX",
        name: "Global Mobile Satellite",
        label: "Intl: Satellite",
    },
    Country {
        code: "882",
        iso: "XX",
        name: "Intl Networks",
        label: "Intl: XX",
    },
    Country {
        code: "883",
        iso: "XX",
        name: "Intl Networks",
        label: "Intl: XX",
    },
    Country {
        code: "886",
        iso: "TW",
        name: "Taiwan",
        label: "Intl: Taiwan",
    },
    Country {
        code: "888",
        iso: "XX",
        name: "OCHA",
        label: "Intl: OCHA",
    },
    Country {
        code: "90",
        iso: "TR",
        name: "Turkey",
        label: "Intl: Turkey",
    },
    Country {
        code: "91",
        iso: "IN",
        name: "India",
        label: "Intl: India",
    },
    Country {
        code: "92",
        iso: "PK",
        name: "Pakistan",
        label: "Intl: Pakistan",
    },
    Country {
        code: "93",
        iso: "AF",
        name: "Afghanistan",
        label: "Intl: AF",
    },
    Country {
        code: "94",
        iso: "LK",
        name: "Sri Lanka",
        label: "Intl: Sri Lanka",
    },
    Country {
        code: "95",
        iso: "MM",
        name: "Myanmar",
        label: "Intl: Myanmar",
    },
    Country {
        code: "960",
        iso: "MV",
        name: "Maldives",
        label: "Intl: Maldives",
    },
    Country {
        code: "961",
        iso: "LB",
        name: "Lebanon",
        label: "Intl: Lebanon",
    },
    Country {
        code: "962",
        iso: "JO",
        name: "Jordan",
        label: "Intl: Jordan",
    },
    Country {
        code: "963",
        iso: "SY",
        name: "Syria",
        label: "Intl: Syria",
    },
    Country {
        code: "964",
        iso: "IQ",
        name: "Iraq",
        label: "Intl: Iraq",
    },
    Country {
        code: "965",
        iso: "KW",
        name: "Kuwait",
        label: "Intl: Kuwait",
    },
    Country {
        code: "966",
        iso: "SA",
        name: "Saudi Arabia",
        label: "Intl: SA",
    },
    Country {
        code: "967",
        iso: "YE",
        name: "Yemen",
        label: "Intl: Yemen",
    },
    Country {
        code: "968",
        iso: "OM",
        name: "Oman",
        label: "Intl: Oman",
    },
    Country {
        code: "970",
        iso: "PS",
        name: "Palestine",
        label: "Intl: Palestine",
    },
    Country {
        code: "971",
        iso: "AE",
        name: "United Arab Emirates",
        label: "Intl: UAE",
    },
    Country {
        code: "972",
        iso: "IL",
        name: "Israel",
        label: "Intl: Israel",
    },
    Country {
        code: "973",
        iso: "BH",
        name: "Bahrain",
        label: "Intl: Bahrain",
    },
    Country {
        code: "974",
        iso: "QA",
        name: "Qatar",
        label: "Intl: Qatar",
    },
    Country {
        code: "975",
        iso: "BT",
        name: "Bhutan",
        label: "Intl: Bhutan",
    },
    Country {
        code: "976",
        iso: "MN",
        name: "Mongolia",
        label: "Intl: Mongolia",
    },
    Country {
        code: "977",
        iso: "NP",
        name: "Nepal",
        label: "Intl: Nepal",
    },
    Country {
        code: "979",
        iso: "XX",
        name: "Intl Premium Rate",
        label: "Intl: XX",
    },
    Country {
        code: "98",
        iso: "IR",
        name: "Iran",
        label: "Intl: Iran",
    },
    Country {
        code: "992",
        iso: "TJ",
        name: "Tajikistan",
        label: "Intl: TJ",
    },
    Country {
        code: "993",
        iso: "TM",
        name: "Turkmenistan",
        label: "Intl: TM",
    },
    Country {
        code: "994",
        iso: "AZ",
        name: "Azerbaijan",
        label: "Intl: AZ",
    },
    Country {
        code: "995",
        iso: "GE",
        name: "Georgia",
        label: "Intl: Georgia",
    },
    Country {
        code: "996",
        iso: "KG",
        name: "Kyrgyzstan",
        label: "Intl: KG",
    },
    Country {
        code: "998",
        iso: "UZ",
        name: "Uzbekistan",
        label: "Intl: UZ",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_unique_and_labels_fit() {
        for w in TABLE.windows(2) {
            assert!(w[0].code < w[1].code, "{} {}", w[0].code, w[1].code);
        }
        for c in TABLE {
            assert!(
                c.label().starts_with("Intl: ") && c.label().len() <= 15,
                "{c:?}"
            );
            assert!(c.code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn spot_checks() {
        let name = |d: &str| country_of(d.as_bytes()).map(|c| c.name);
        assert_eq!(name("959123456789"), Some("Myanmar"));
        assert_eq!(name("8613800000001"), Some("China"));
        assert_eq!(name("85291234567"), Some("Hong Kong"));
        assert_eq!(name("85361234567"), Some("Macao"));
        assert_eq!(name("886912345678"), Some("Taiwan"));
        assert_eq!(name("447911123456"), Some("United Kingdom"));
        assert_eq!(name("18765550100"), Some("Jamaica"));
        assert_eq!(name("14165550100"), Some("Canada"));
        assert_eq!(name("12025550100"), Some("United States"));
        assert_eq!(name("77011234567"), Some("Kazakhstan"));
        assert_eq!(name("79161234567"), Some("Russia"));
        assert_eq!(name("855123456789"), Some("Cambodia"));
        assert_eq!(name("8562012345678"), Some("Laos"));
        assert_eq!(name("639171234567"), Some("Philippines"));
        assert_eq!(name("2348031234567"), Some("Nigeria"));
        assert_eq!(country_of(b"88212345678").map(|c| c.iso), Some("XX"));
        assert_eq!(
            country_of(b"12025550100").map(|c| c.label()),
            Some("Intl: USA")
        );
        assert_eq!(
            country_of(b"97150123456").map(|c| c.label()),
            Some("Intl: UAE")
        );
    }

    #[test]
    fn unassigned_and_junk_are_none() {
        for d in ["2801234567", "8011234567", "0123", "", "12a4", "999123"] {
            assert_eq!(country_of(d.as_bytes()), None, "{d}");
        }
    }
}
