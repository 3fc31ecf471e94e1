//! Output formats (exact CSV, JSON and NDJSON), table widths, colours and NO_COLOR, and the
//! progress indicator.

use crate::{
    harness::{Pty, Server, stderr, stdout, without_time},
    sql::people,
};

const TYPED: &str = "SELECT 9007199254740993 AS big, 0.5 AS half, x'6869' AS bytes, \
    CAST('12.50' AS TEXT) AS txt, json('{\"a\":[1,2]}') AS doc, NULL AS absent, '' AS empty";

#[test]
fn csv_is_rfc_4180_with_null_as_an_empty_field() {
    let s = Server::start();
    let db = people(&s);
    s.cmd()
        .args(["sql", &db, "SELECT * FROM people ORDER BY id", "-o", "csv"])
        .assert()
        .success()
        .stdout(
            "id,name,age,score,note,data\r\n\
             1,Ada,36,9.5,,\\x00ff\r\n\
             2,Alan,41,7.0,\"a,b \"\"q\"\"\",\r\n\
             3,Grace,,,\"\",\r\n",
        );
}

#[test]
fn json_and_ndjson_are_typed() {
    let s = Server::start();
    let db = s.db("typed");
    let row = "{\"big\":9007199254740993,\"half\":0.5,\"bytes\":\"aGk=\",\"txt\":\"12.50\",\
               \"doc\":\"{\\\"a\\\":[1,2]}\",\"absent\":null,\"empty\":\"\"}";
    s.cmd()
        .args(["sql", &db, TYPED, "-o", "ndjson"])
        .assert()
        .success()
        .stdout(format!("{row}\n"));
    s.cmd()
        .args(["sql", &db, TYPED, "-o", "json"])
        .assert()
        .success()
        .stdout(format!("[\n{row}\n]\n"));
    // An empty result is an empty array, and repeated column names keep both values.
    s.cmd()
        .args(["sql", &db, "SELECT 1 AS a, 2 AS a WHERE 0", "-o", "json"])
        .assert()
        .success()
        .stdout("[]\n");
    s.cmd()
        .args(["sql", &db, "SELECT 1 AS a, 2 AS a", "-o", "json"])
        .assert()
        .success()
        .stdout("[\n{\"a\":1,\"a_2\":2}\n]\n");
}

#[test]
fn typed_columns_render_by_kind() {
    let s = Server::start();
    let db = s.db("kinds");
    s.exec(
        &db,
        "CREATE TABLE k (d DECIMAL TEXT, j JSON TEXT, t TIMESTAMP TEXT, dt DATE TEXT, b BOOLEAN)",
    );
    s.exec(
        &db,
        "INSERT INTO k VALUES ('12.50', '{\"a\": 1}', '2024-05-01T12:00:00Z', '2024-05-01', 1)",
    );
    s.cmd()
        .args(["sql", &db, "SELECT * FROM k", "-o", "ndjson"])
        .assert()
        .success()
        .stdout(
            "{\"d\":\"12.50\",\"j\":{\"a\":1},\"t\":\"2024-05-01T12:00:00Z\",\"dt\":\"2024-05-01\",\"b\":true}\n",
        );
    let out = s
        .cmd()
        .args([
            "sql",
            &db,
            "SELECT d, t, b FROM k",
            "-o",
            "table",
            "--color",
            "never",
        ])
        .output()
        .expect("run");
    assert_eq!(
        without_time(&stdout(&out)),
        "\
┌───────┬──────────────────────┬──────┐
│     d │ t                    │ b    │
├───────┼──────────────────────┼──────┤
│ 12.50 │ 2024-05-01T12:00:00Z │ true │
└───────┴──────────────────────┴──────┘
1 row
"
    );
}

#[test]
fn tables_cut_or_wrap_wide_cells_to_the_width() {
    let s = Server::start();
    let db = s.db("wide");
    let sql = "SELECT 'short' AS a, 'a rather long sentence that does not fit' AS b";
    let run = |extra: &[&str]| {
        let out = s
            .cmd()
            .args(["sql", &db, sql, "-o", "table", "--color", "never"])
            .args(extra)
            .output()
            .expect("run");
        without_time(&stdout(&out))
    };
    assert_eq!(
        run(&["--width", "30"]),
        "\
┌───────┬────────────────────┐
│ a     │ b                  │
├───────┼────────────────────┤
│ short │ a rather long sen… │
└───────┴────────────────────┘
1 row
"
    );
    assert_eq!(
        run(&["--width", "30", "--wrap"]),
        "\
┌───────┬────────────────────┐
│ a     │ b                  │
├───────┼────────────────────┤
│ short │ a rather long sent │
│       │ ence that does not │
│       │  fit               │
└───────┴────────────────────┘
1 row
"
    );
    // COLUMNS is the width when no flag says otherwise.
    let out = s
        .cmd()
        .env("COLUMNS", "30")
        .args(["sql", &db, sql, "-o", "table", "--color", "never"])
        .output()
        .expect("run");
    assert_eq!(without_time(&stdout(&out)), run(&["--width", "30"]));
    // Control characters in values cannot reach the terminal.
    let out = s
        .cmd()
        .args([
            "sql",
            &db,
            "SELECT char(27) || '[2J' || char(10) AS x",
            "-o",
            "table",
        ])
        .args(["--color", "never"])
        .output()
        .expect("run");
    assert!(
        stdout(&out).contains("│ \\u{1b}[2J\\n │"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn colours_follow_color_and_no_color() {
    let s = Server::start();
    let db = s.db("colours");
    let sql = "SELECT 1 AS n, NULL AS x";
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = s.cmd();
        cmd.args(["sql", &db, sql, "-o", "table"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        stdout(&cmd.output().expect("run"))
    };
    let bold_header = "\u{1b}[1mn\u{1b}[0m";
    let number = "\u{1b}[36m1\u{1b}[0m";
    let null = "\u{1b}[2m\u{1b}[3mNULL\u{1b}[0m";
    let coloured = run(&["--color", "always"], &[]);
    assert!(coloured.contains(bold_header), "{coloured:?}");
    assert!(
        coloured.contains(number) && coloured.contains(null),
        "{coloured:?}"
    );
    assert!(!run(&["--color", "never"], &[]).contains('\u{1b}'));
    // auto: not a terminal, so no colour; CLICOLOR_FORCE asks for it; NO_COLOR wins over that.
    assert!(!run(&[], &[]).contains('\u{1b}'));
    assert!(run(&[], &[("CLICOLOR_FORCE", "1")]).contains(bold_header));
    assert!(!run(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\u{1b}'));
    // An explicit --color always is the user's choice and beats NO_COLOR.
    assert!(run(&["--color", "always"], &[("NO_COLOR", "1")]).contains(bold_header));
    // Errors are coloured on stderr by the same rules.
    let out = s
        .cmd()
        .args(["--color", "always", "sql", "nope-db", "SELECT 1"])
        .output()
        .expect("run");
    assert!(
        stderr(&out).starts_with("\u{1b}[1m\u{1b}[31merror\u{1b}[0m: "),
        "{:?}",
        stderr(&out)
    );
}

#[test]
fn a_terminal_gets_tables_and_colours_unless_no_color() {
    let s = Server::start();
    let db = s.db("tty");
    let mut cmd = s.std_cmd();
    cmd.args(["sql", &db, "SELECT 1 AS n"]);
    let mut pty = Pty::spawn(cmd);
    let out = pty.expect_eof();
    assert!(out.contains("\u{1b}[1mn\u{1b}[0m"), "{out:?}");
    assert!(out.contains("┌───┐"), "{out:?}");
    assert_eq!(pty.exit_code(), 0);

    let mut cmd = s.std_cmd();
    cmd.env("NO_COLOR", "1").args(["sql", &db, "SELECT 1 AS n"]);
    let mut pty = Pty::spawn(cmd);
    let out = pty.expect_eof();
    assert!(out.contains("│ n │"), "{out:?}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn progress_shows_on_a_terminal_stderr_only() {
    let s = Server::start();
    let db = s.db("progress");
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) \
               SELECT x, 'padding padding padding' AS p FROM c";
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.csv");
    // stdout to a file, stderr on the terminal: the spinner counts rows there.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "\"$0\" sql {db} \"{sql}\" -o csv > {}",
            file.display()
        ))
        .arg(crate::harness::bin());
    for var in Server::CLEARED {
        cmd.env_remove(var);
    }
    cmd.envs(s.env());
    let mut pty = Pty::spawn(cmd);
    let seen = pty.expect_eof();
    assert!(seen.contains("rows received"), "{seen:?}");
    assert_eq!(pty.exit_code(), 0);
    let csv = std::fs::read_to_string(&file).expect("csv written");
    assert_eq!(csv.lines().count(), 300_001);
    // In a pipe there is no indicator at all.
    let out = s
        .cmd()
        .args(["sql", &db, sql, "-o", "csv"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}
