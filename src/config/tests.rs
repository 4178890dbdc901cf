use super::*;

const EXAMPLE: &str = r#"
[repository]
location = "/srv/vault"
password_file = "/etc/vault/password"

[[copy]]
name = "offsite"
location = "s3://backups/db1"
password_file = "/etc/vault/offsite.pw"

[[source]]
name = "app-db"
kind = "pg"
database = "app"
schedule = "1h"
rpo = "2h"
rto = "30m"
keep = { hourly = 24, daily = 7 }
drill = { every = "7d", asserts = ["SELECT count(*) > 0 FROM orders"] }

[[source]]
name = "uploads"
kind = "files"
paths = ["/srv/uploads"]
schedule = "6h"
rpo = "1d"
copy_to = []

[check]
every = "1d"
read_data_subset = "1/7"

[alerts]
webhook = "https://hooks.example/T0"
format = "slack"
"#;

#[test]
fn example_plan_parses() {
    let plan = Plan::parse(EXAMPLE).unwrap();
    assert_eq!(plan.sources.len(), 2);
    let db = plan.source("app-db").unwrap();
    assert_eq!(db.kind.name(), "pg");
    assert_eq!(db.schedule.secs, 3600);
    assert!(db.verify);
    assert_eq!(plan.copies_of(db).count(), 1);
    assert_eq!(plan.copies_of(plan.source("uploads").unwrap()).count(), 0);
    assert_eq!(plan.alerts.format, WebhookFormat::Slack);
    assert_eq!(plan.serve.listen, "127.0.0.1:9797");
    assert_eq!(plan.keep_runs.secs, 35 * 86_400);
}

#[test]
fn plan_with_a_password_is_refused() {
    let text = EXAMPLE.replace(
        "password_file = \"/etc/vault/password\"",
        "password = \"hunter2\"",
    );
    let err = Plan::parse(&text).unwrap_err().to_string();
    assert!(err.contains("'password' looks like a secret"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn plan_mistakes_are_named() {
    for (edit, expect) in [
        (("kind = \"pg\"", "kind = \"oracle\""), "unknown variant"),
        (
            ("schedule = \"1h\"", "schedule = \"hourly\""),
            "not a duration",
        ),
        (
            ("copy_to = []", "copy_to = [\"nowhere\"]"),
            "no [[copy]] target named 'nowhere'",
        ),
        (("name = \"uploads\"", "name = \"app-db\""), "defined twice"),
        (
            ("rpo = \"1d\"", "rpo = \"1d\"\ncolour = 1"),
            "unknown field",
        ),
        (
            ("keep = { hourly = 24, daily = 7 }", "keep = {}"),
            "has no rule",
        ),
    ] {
        let text = EXAMPLE.replace(edit.0, edit.1);
        assert_ne!(text, EXAMPLE, "{edit:?}");
        let err = Plan::parse(&text).unwrap_err().to_string();
        assert!(err.contains(expect), "{edit:?}: {err}");
    }
}

#[test]
fn keep_takes_a_wal_window_in_elapsed_time() {
    let with = |keep: &str| {
        Plan::parse(&format!(
            "[repository]\nlocation = \"/r\"\n[[source]]\nname = \"db\"\nkind = \"pg\"\ndatabase = \"app\"\nschedule = \"1h\"\nrpo = \"2h\"\nkeep = {keep}\n"
        ))
    };
    let plan = with("{ last = 3, wal_within = \"7d\" }").unwrap();
    let keep = plan.sources[0].keep.as_ref().unwrap();
    assert_eq!(keep.wal_within_secs().unwrap(), Some(7 * 86_400));
    assert!(with("{ last = 3, wal_within = \"7x\" }").is_err());
}
