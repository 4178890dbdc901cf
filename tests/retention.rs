//! Retention policy (`vault forget`): table-driven cases with a fixed
//! `now`, and properties that must hold for any snapshots and rules.

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use proptest::prelude::*;
use vault::format::snapshot::{Snapshot, Summary};
use vault::format::{Id, Timestamp};
use vault::policy::{apply, GroupBy, KeepDuration, KeepRules, Plan, Reason, Selection};

/// US Eastern time by its POSIX rule, so the tests need no tz database:
/// 2026-03-08 02:00 EST jumps to 03:00 EDT, 2026-11-01 02:00 EDT falls back
/// to 01:00 EST.
fn eastern() -> TimeZone {
    TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()
}

fn at(rfc3339: &str) -> Timestamp {
    let t: jiff::Timestamp = rfc3339.parse().unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    Timestamp {
        secs: t.as_second(),
        nanos: 0,
    }
}

fn snap(n: u8, time: Timestamp, host: &str, tags: &[&str]) -> (Id, Snapshot) {
    let id = Id::from_bytes([n; 32]);
    let s = Snapshot {
        time,
        host: host.into(),
        user: "u".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        source: "stdin".into(),
        paths: vec![b"db.sql".to_vec()],
        root: Id::from_bytes([0; 32]),
        parent: None,
        summary: Summary::default(),
        program_version: "test".into(),
        meta: vec![],
    };
    (id, s)
}

/// Snapshots numbered 1.. in the order given, all from one host.
fn snaps(times: &[&str]) -> Vec<(Id, Snapshot)> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| snap(i as u8 + 1, at(t), "h", &[]))
        .collect()
}

fn run(snapshots: &[(Id, Snapshot)], rules: &KeepRules, now: &str, tz: &TimeZone) -> Plan {
    apply(
        snapshots,
        rules,
        &Selection::default(),
        GroupBy::default(),
        at(now),
        tz,
    )
    .unwrap()
}

/// Snapshot numbers kept.
fn kept(plan: &Plan) -> BTreeSet<u8> {
    plan.kept().map(|k| k.id.as_bytes()[0]).collect()
}

fn reasons_of(plan: &Plan, n: u8) -> Vec<String> {
    plan.kept()
        .find(|k| k.id.as_bytes()[0] == n)
        .map(|k| k.reasons.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default()
}

fn rules(f: impl FnOnce(&mut KeepRules)) -> KeepRules {
    let mut r = KeepRules::default();
    f(&mut r);
    r
}

fn dur(s: &str) -> KeepDuration {
    s.parse().unwrap()
}

const HOURLY: usize = 0;
const DAILY: usize = 1;
const WEEKLY: usize = 2;
const MONTHLY: usize = 3;
const YEARLY: usize = 4;

struct Case {
    name: &'static str,
    times: &'static [&'static str],
    rules: KeepRules,
    now: &'static str,
    tz: TimeZone,
    kept: &'static [u8],
}

fn cases() -> Vec<Case> {
    let utc = TimeZone::UTC;
    let day_times: &'static [&'static str] = &[
        "2026-06-01T08:00:00Z",
        "2026-06-01T20:00:00Z",
        "2026-06-02T09:00:00Z",
        "2026-06-02T21:00:00Z",
        "2026-06-04T10:00:00Z",
    ];
    vec![
        Case {
            name: "keep-last 2 keeps the two newest",
            times: day_times,
            rules: rules(|r| r.last = Some(2)),
            now: "2026-06-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[4, 5],
        },
        Case {
            name: "keep-hourly keeps the newest of each hour",
            times: &[
                "2026-06-01T10:05:00Z",
                "2026-06-01T10:40:00Z",
                "2026-06-01T11:10:00Z",
                "2026-06-01T12:00:00Z",
                "2026-06-01T12:30:00Z",
                "2026-06-01T13:15:00Z",
            ],
            rules: rules(|r| r.periods[HOURLY] = Some(3)),
            now: "2026-06-01T14:00:00Z",
            tz: utc.clone(),
            kept: &[3, 5, 6],
        },
        Case {
            name: "keep-daily counts days that have snapshots, skipping gaps",
            times: day_times,
            rules: rules(|r| r.periods[DAILY] = Some(2)),
            now: "2026-06-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[4, 5],
        },
        Case {
            name: "keep-daily larger than the history keeps one per day",
            times: day_times,
            rules: rules(|r| r.periods[DAILY] = Some(30)),
            now: "2026-06-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[2, 4, 5],
        },
        Case {
            name: "keep-weekly uses ISO weeks (Monday to Sunday)",
            times: &[
                "2026-06-06T12:00:00Z", // Saturday, week 23
                "2026-06-07T12:00:00Z", // Sunday, week 23
                "2026-06-08T12:00:00Z", // Monday, week 24
                "2026-06-14T12:00:00Z", // Sunday, week 24
                "2026-06-15T12:00:00Z", // Monday, week 25
            ],
            rules: rules(|r| r.periods[WEEKLY] = Some(2)),
            now: "2026-06-16T00:00:00Z",
            tz: utc.clone(),
            kept: &[4, 5],
        },
        Case {
            name: "keep-weekly across a year boundary (2026-12-31 is in 2026-W53)",
            times: &[
                "2026-12-27T12:00:00Z", // week 52
                "2026-12-31T12:00:00Z", // week 53
                "2027-01-03T12:00:00Z", // still week 53 of 2026
                "2027-01-04T12:00:00Z", // 2027-W01
            ],
            rules: rules(|r| r.periods[WEEKLY] = Some(3)),
            now: "2027-01-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[1, 3, 4],
        },
        Case {
            name: "keep-monthly and keep-yearly",
            times: &[
                "2024-12-31T12:00:00Z",
                "2025-06-01T12:00:00Z",
                "2025-12-01T12:00:00Z",
                "2025-12-20T12:00:00Z",
                "2026-01-10T12:00:00Z",
                "2026-01-20T12:00:00Z",
            ],
            rules: rules(|r| {
                r.periods[MONTHLY] = Some(2);
                r.periods[YEARLY] = Some(3);
            }),
            now: "2026-02-01T00:00:00Z",
            tz: utc.clone(),
            kept: &[1, 4, 6],
        },
        Case {
            name: "combined rules keep the union",
            times: day_times,
            rules: rules(|r| {
                r.last = Some(1);
                r.periods[DAILY] = Some(2);
                r.periods[WEEKLY] = Some(1);
            }),
            now: "2026-06-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[4, 5],
        },
        Case {
            name: "the hour repeated when clocks fall back is two hours",
            times: &[
                "2026-11-01T00:30:00-04:00",
                "2026-11-01T01:10:00-04:00", // first 01:xx (EDT)
                "2026-11-01T01:50:00-04:00",
                "2026-11-01T01:10:00-05:00", // second 01:xx (EST)
                "2026-11-01T01:50:00-05:00",
            ],
            rules: rules(|r| r.periods[HOURLY] = Some(3)),
            now: "2026-11-01T03:00:00-05:00",
            tz: eastern(),
            kept: &[1, 3, 5],
        },
        Case {
            name: "the 25-hour day when clocks fall back is one day",
            times: &[
                "2026-10-31T23:00:00-04:00",
                "2026-11-01T00:10:00-04:00",
                "2026-11-01T23:50:00-05:00",
                "2026-11-02T00:10:00-05:00",
            ],
            rules: rules(|r| r.periods[DAILY] = Some(3)),
            now: "2026-11-02T12:00:00-05:00",
            tz: eastern(),
            kept: &[1, 3, 4],
        },
        Case {
            name: "the hour skipped when clocks spring forward loses no period",
            times: &[
                "2026-03-08T01:10:00-05:00",
                "2026-03-08T01:50:00-05:00", // 01:xx EST
                "2026-03-08T03:10:00-04:00", // the next real hour is 03:xx EDT
                "2026-03-08T03:50:00-04:00",
            ],
            rules: rules(|r| r.periods[HOURLY] = Some(2)),
            now: "2026-03-08T05:00:00-04:00",
            tz: eastern(),
            kept: &[2, 4],
        },
        Case {
            name: "the 23-hour day when clocks spring forward is one day",
            times: &[
                "2026-03-07T23:30:00-05:00",
                "2026-03-08T00:30:00-05:00",
                "2026-03-08T23:30:00-04:00",
            ],
            rules: rules(|r| r.periods[DAILY] = Some(2)),
            now: "2026-03-09T00:00:00-04:00",
            tz: eastern(),
            kept: &[1, 3],
        },
        Case {
            name: "days follow the local calendar, not UTC",
            times: &[
                "2026-06-01T22:00:00-04:00", // 02:00Z on 06-02
                "2026-06-01T23:00:00-04:00", // 03:00Z on 06-02
                "2026-06-02T08:00:00-04:00",
            ],
            rules: rules(|r| r.periods[DAILY] = Some(5)),
            now: "2026-06-03T00:00:00-04:00",
            tz: eastern(),
            kept: &[2, 3],
        },
        Case {
            name: "the same snapshots in UTC make other days",
            times: &[
                "2026-06-01T22:00:00-04:00",
                "2026-06-01T23:00:00-04:00",
                "2026-06-02T08:00:00-04:00",
            ],
            rules: rules(|r| r.periods[DAILY] = Some(5)),
            now: "2026-06-03T00:00:00-04:00",
            tz: TimeZone::UTC,
            kept: &[3],
        },
        Case {
            name: "keep-within keeps everything since now minus the duration",
            times: &[
                "2026-06-01T00:00:00Z",
                "2026-06-02T13:00:00Z",
                "2026-06-03T11:00:00Z",
                "2026-06-03T12:00:00Z",
            ],
            rules: rules(|r| r.within = Some(dur("2d"))),
            now: "2026-06-04T12:00:00Z",
            tz: utc.clone(),
            kept: &[2, 3, 4],
        },
        Case {
            name: "keep-within counts calendar days across a DST change",
            times: &[
                "2026-03-07T11:30:00-05:00", // 23.5 real hours before now
                "2026-03-07T12:30:00-05:00", // 22.5 real hours before now
                "2026-03-08T11:00:00-04:00",
            ],
            rules: rules(|r| r.within = Some(dur("1d"))),
            now: "2026-03-08T12:00:00-04:00",
            tz: eastern(),
            kept: &[2, 3],
        },
        Case {
            name: "keep-within-daily keeps one per day inside the window only",
            times: &[
                "2026-05-25T12:00:00Z",
                "2026-06-02T08:00:00Z",
                "2026-06-02T20:00:00Z",
                "2026-06-03T09:00:00Z",
                "2026-06-04T10:00:00Z",
            ],
            rules: rules(|r| r.within_periods[DAILY] = Some(dur("3d"))),
            now: "2026-06-04T12:00:00Z",
            tz: utc.clone(),
            kept: &[3, 4, 5],
        },
        Case {
            name: "a monthly window reaches back a calendar month",
            times: &[
                "2026-02-27T12:00:00Z",
                "2026-02-28T12:00:00Z",
                "2026-03-15T12:00:00Z",
            ],
            rules: rules(|r| r.within = Some(dur("1m"))),
            now: "2026-03-31T00:00:00Z",
            tz: utc.clone(),
            kept: &[2, 3],
        },
        Case {
            name: "the newest survives even when no rule picks it",
            times: day_times,
            rules: rules(|r| r.tags = vec!["nothing-has-this".into()]),
            now: "2026-06-05T00:00:00Z",
            tz: utc.clone(),
            kept: &[5],
        },
        Case {
            name: "the newest survives a window that excludes everything",
            times: day_times,
            rules: rules(|r| r.within = Some(dur("1h"))),
            now: "2027-01-01T00:00:00Z",
            tz: utc,
            kept: &[5],
        },
    ]
}

#[test]
fn table_of_retention_cases() {
    let mut failures = Vec::new();
    for case in cases() {
        let plan = run(&snaps(case.times), &case.rules, case.now, &case.tz);
        let got = kept(&plan);
        let want: BTreeSet<u8> = case.kept.iter().copied().collect();
        if got != want {
            failures.push(format!("{}: kept {got:?}, expected {want:?}", case.name));
        }
        let total = plan.kept().count() + plan.removed().count();
        assert_eq!(total, case.times.len(), "{}: snapshots lost", case.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_kept_snapshot_says_why() {
    let times = [
        "2026-06-01T08:00:00Z",
        "2026-06-02T09:00:00Z",
        "2026-06-02T21:00:00Z",
    ];
    let r = rules(|r| {
        r.last = Some(1);
        r.periods[DAILY] = Some(2);
    });
    let plan = run(&snaps(&times), &r, "2026-06-03T00:00:00Z", &TimeZone::UTC);
    assert_eq!(reasons_of(&plan, 3), ["last 1", "daily 2026-06-02"]);
    assert_eq!(reasons_of(&plan, 1), ["daily 2026-06-01"]);
    assert!(reasons_of(&plan, 2).is_empty());
    let fall_back = ["2026-11-01T01:10:00-04:00", "2026-11-01T01:10:00-05:00"];
    let plan = run(
        &snaps(&fall_back),
        &rules(|r| r.periods[HOURLY] = Some(2)),
        "2026-11-01T03:00:00-05:00",
        &eastern(),
    );
    assert_eq!(reasons_of(&plan, 1), ["hourly 2026-11-01 01h -04:00"]);
    assert_eq!(reasons_of(&plan, 2), ["hourly 2026-11-01 01h -05:00"]);
}

#[test]
fn tags_keep_snapshots_of_any_age() {
    let list = vec![
        snap(1, at("2020-01-01T00:00:00Z"), "h", &["release"]),
        snap(2, at("2021-01-01T00:00:00Z"), "h", &["nightly"]),
        snap(3, at("2026-06-01T00:00:00Z"), "h", &[]),
    ];
    let plan = run(
        &list,
        &rules(|r| r.tags = vec!["release".into()]),
        "2026-06-02T00:00:00Z",
        &TimeZone::UTC,
    );
    assert_eq!(kept(&plan), BTreeSet::from([1, 3]));
    assert_eq!(reasons_of(&plan, 1), ["tag release"]);
    assert_eq!(reasons_of(&plan, 3), ["newest of its group"]);
}

#[test]
fn groups_are_judged_separately_and_filters_leave_others_alone() {
    let t = |s| at(s);
    let list = vec![
        snap(1, t("2026-06-01T00:00:00Z"), "a", &[]),
        snap(2, t("2026-06-02T00:00:00Z"), "a", &[]),
        snap(3, t("2026-06-01T00:00:00Z"), "b", &[]),
        snap(4, t("2026-06-02T00:00:00Z"), "b", &[]),
    ];
    let last1 = rules(|r| r.last = Some(1));
    let now = at("2026-06-03T00:00:00Z");
    let by_host = apply(
        &list,
        &last1,
        &Selection::default(),
        GroupBy::default(),
        now,
        &TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(kept(&by_host), BTreeSet::from([2, 4]));
    assert_eq!(by_host.groups.len(), 2);

    let one_group: GroupBy = "".parse().unwrap();
    let all = apply(
        &list,
        &last1,
        &Selection::default(),
        one_group,
        now,
        &TimeZone::UTC,
    )
    .unwrap();
    assert_eq!(all.groups.len(), 1);
    assert_eq!(all.kept().count(), 1);

    let only_a = Selection {
        hosts: vec!["a".into()],
        ..Selection::default()
    };
    let plan = apply(
        &list,
        &last1,
        &only_a,
        GroupBy::default(),
        now,
        &TimeZone::UTC,
    )
    .unwrap();
    let touched: BTreeSet<u8> = plan
        .kept()
        .map(|k| k.id.as_bytes()[0])
        .chain(plan.removed().map(|r| r.id.as_bytes()[0]))
        .collect();
    assert_eq!(touched, BTreeSet::from([1, 2]), "host b must not be judged");
    assert!("colour".parse::<GroupBy>().is_err());
}

#[test]
fn an_empty_rule_set_is_refused() {
    let err = apply(
        &snaps(&["2026-06-01T00:00:00Z"]),
        &KeepRules::default(),
        &Selection::default(),
        GroupBy::default(),
        at("2026-06-02T00:00:00Z"),
        &TimeZone::UTC,
    )
    .unwrap_err();
    assert_eq!(err.kind(), vault::ErrorKind::InvalidInput);
}

// ---------------------------------------------------------------------------
// Properties

/// Snapshots over about two years from two hosts and two sources, with a
/// few tags; times may repeat.
fn arb_snapshots() -> impl Strategy<Value = Vec<(Id, Snapshot)>> {
    prop::collection::vec((0i64..63_000_000, 0u8..2, 0u8..2, 0u8..4), 0..40).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (offset, host, source, tag))| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let (_, mut s) = snap(
                    0,
                    Timestamp {
                        secs: 1_700_000_000 + offset,
                        nanos: 0,
                    },
                    ["a", "b"][host as usize],
                    &[],
                );
                s.paths = vec![[b"x".to_vec(), b"y".to_vec()][source as usize].clone()];
                if tag > 1 {
                    s.tags = vec![["keep", "other"][tag as usize - 2].to_string()];
                }
                (Id::from_bytes(id), s)
            })
            .collect()
    })
}

fn arb_duration() -> impl Strategy<Value = KeepDuration> {
    (0u32..2, 0u32..13, 0u32..5, 0u32..60, 0u32..48).prop_map(
        |(years, months, weeks, days, hours)| KeepDuration {
            years,
            months,
            weeks,
            days,
            hours,
        },
    )
}

fn arb_rules() -> impl Strategy<Value = KeepRules> {
    (
        prop::option::of(0u32..6),
        prop::array::uniform5(prop::option::of(0u32..8)),
        prop::option::of(arb_duration()),
        prop::array::uniform5(prop::option::of(arb_duration())),
        prop::bool::ANY,
    )
        .prop_map(|(last, periods, within, within_periods, tag)| KeepRules {
            last,
            periods,
            within,
            within_periods,
            tags: if tag { vec!["keep".into()] } else { vec![] },
        })
}

fn arb_tz() -> impl Strategy<Value = TimeZone> {
    prop_oneof![Just(TimeZone::UTC), Just(eastern())]
}

fn kept_ids(plan: &Plan) -> BTreeSet<Id> {
    plan.kept().map(|k| k.id).collect()
}

/// Rules that keep everything `base` keeps and what `extra` adds: larger
/// counts, and for each window the one reaching further back from `now`.
fn widen(base: &KeepRules, extra: &KeepRules, now: Timestamp, tz: &TimeZone) -> KeepRules {
    let reach = |d: KeepDuration| {
        jiff::Timestamp::from_second(now.secs)
            .unwrap()
            .to_zoned(tz.clone())
            .checked_sub(d.to_span().unwrap())
            .unwrap()
            .timestamp()
    };
    let longer = |a: Option<KeepDuration>, b: Option<KeepDuration>| match (a, b) {
        (Some(a), Some(b)) => Some(if reach(a) <= reach(b) { a } else { b }),
        (a, b) => a.or(b),
    };
    let mut out = base.clone();
    out.last = base.last.max(extra.last);
    for i in 0..5 {
        out.periods[i] = base.periods[i].max(extra.periods[i]);
        out.within_periods[i] = longer(base.within_periods[i], extra.within_periods[i]);
    }
    out.within = longer(base.within, extra.within);
    out.tags.extend(extra.tags.iter().cloned());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_newest_of_every_group_survives(
        list in arb_snapshots(), r in arb_rules(), tz in arb_tz(), now in 1_700_000_000i64..1_800_000_000,
    ) {
        prop_assume!(!r.is_empty());
        let now = Timestamp { secs: now, nanos: 0 };
        let plan = apply(&list, &r, &Selection::default(), GroupBy::default(), now, &tz).unwrap();
        prop_assert_eq!(plan.kept().count() + plan.removed().count(), list.len());
        for g in &plan.groups {
            let newest_kept = g.keep.iter().map(|k| (k.time, k.id)).max();
            let newest_removed = g.remove.iter().map(|k| (k.time, k.id)).max();
            prop_assert!(newest_kept.is_some());
            prop_assert!(newest_removed < newest_kept, "group {} lost its newest", g.key);
            for k in &g.keep {
                prop_assert!(!k.reasons.is_empty());
            }
        }
    }

    #[test]
    fn adding_a_rule_never_removes_a_kept_snapshot(
        list in arb_snapshots(), base in arb_rules(), extra in arb_rules(), tz in arb_tz(),
        now in 1_700_000_000i64..1_800_000_000,
    ) {
        prop_assume!(!base.is_empty());
        let now = Timestamp { secs: now, nanos: 0 };
        let before = apply(&list, &base, &Selection::default(), GroupBy::default(), now, &tz).unwrap();
        let wider = widen(&base, &extra, now, &tz);
        let after = apply(&list, &wider, &Selection::default(), GroupBy::default(), now, &tz).unwrap();
        let lost: Vec<_> = kept_ids(&before).difference(&kept_ids(&after)).copied().collect();
        prop_assert!(lost.is_empty(), "{} snapshots lost by adding rules", lost.len());
    }

    #[test]
    fn the_plan_does_not_depend_on_listing_order(
        list in arb_snapshots(), r in arb_rules(), tz in arb_tz(), seed in any::<u64>(),
        now in 1_700_000_000i64..1_800_000_000,
    ) {
        prop_assume!(!r.is_empty());
        let now = Timestamp { secs: now, nanos: 0 };
        let mut shuffled = list.clone();
        // Fisher-Yates with a small LCG: deterministic per seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let a = apply(&list, &r, &Selection::default(), GroupBy::default(), now, &tz).unwrap();
        let b = apply(&shuffled, &r, &Selection::default(), GroupBy::default(), now, &tz).unwrap();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn reasons_print_readably() {
    assert_eq!(Reason::Last(2).to_string(), "last 2");
    assert_eq!(Reason::Within(dur("30d")).to_string(), "within 30d");
    assert_eq!(Reason::Tag("x".into()).to_string(), "tag x");
}
