//! `dbforge shell`, driven through a pseudo-terminal like a person would: statements over
//! several lines, dot-commands, completion, transactions, Ctrl-C during a long query, history.

use std::time::Duration;

use crate::harness::{Pty, Server};

fn shell(s: &Server, db: &str) -> Pty {
    let mut cmd = s.std_cmd();
    // Plain output keeps the expectations readable; colours on a terminal are tested in
    // output.rs.
    cmd.env("NO_COLOR", "1").args(["shell", db]);
    let mut pty = Pty::spawn(cmd);
    pty.expect(&format!("connected to {db} (sqlite) at {}", s.endpoint()));
    pty.expect(&format!("{db}> "));
    pty
}

#[test]
fn statements_dot_commands_and_history() {
    let s = Server::start();
    let db = s.db("sh");
    let mut pty = shell(&s, &db);
    pty.line("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);");
    pty.expect("0 rows affected");
    pty.expect(&format!("{db}> "));
    pty.line("INSERT INTO people (name) VALUES ('Ada'), ('Alan');");
    pty.expect("2 rows affected");
    pty.expect(&format!("{db}> "));

    // A statement over three lines runs when its `;` arrives.
    pty.line("SELECT name");
    pty.expect("...> ");
    pty.line("FROM people");
    pty.expect("...> ");
    pty.line("ORDER BY id;");
    pty.expect("│ name │\r\n├──────┤\r\n│ Ada  │\r\n│ Alan │\r\n└──────┘\r\n2 rows\r\n");

    pty.line(".tables");
    pty.expect("\r\npeople\r\n");
    pty.line(".schema people");
    // The gateway's rendering (SchemaService): one column a line, with a row estimate.
    pty.expect("CREATE TABLE people (\r\n  id INTEGER PRIMARY KEY");
    pty.expect("\r\n  name TEXT\r\n);");
    pty.line(".mode csv");
    pty.expect(&format!("{db}> "));
    pty.line("SELECT id, name FROM people WHERE id = 1;");
    // CSV lines end in CRLF, which the terminal shows as CR CR LF.
    pty.expect("id,name\r\r\n1,Ada\r\r\n");
    pty.line(".mode table");
    pty.expect(&format!("{db}> "));
    pty.line(".timer on");
    pty.expect(&format!("{db}> "));
    pty.line("SELECT 42 AS answer;");
    pty.expect("│     42 │");
    pty.expect("1 row (");
    pty.expect(" ms)");
    // Errors are reported and the shell carries on.
    pty.line("SELEC 1;");
    pty.expect("error: near \"SELEC\": syntax error");
    pty.line(".nonsense");
    pty.expect("error: unknown command .nonsense; .help lists them");
    pty.line(".help");
    pty.expect(".schema");
    pty.line(".quit");
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 0);

    // History is kept per user and offered by the next session (Up arrow).
    let history = std::fs::read_to_string(s.history()).expect("history file");
    assert!(history.contains("SELECT 42 AS answer;"), "{history}");
    assert!(history.contains(".mode csv"), "{history}");
    let mut pty = shell(&s, &db);
    pty.send("\u{1b}[A");
    pty.expect(".quit");
    pty.send("\r");
    pty.expect_eof();
}

#[test]
fn ctrl_c_cancels_the_running_query_and_keeps_the_shell() {
    let s = Server::with(|mut c| {
        // Bounds the cancelled statement's lifetime on the server side too.
        c.statement_timeout = Duration::from_secs(10);
        c
    });
    let db = s.db("cancel");
    let mut pty = shell(&s, &db);
    pty.line(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
    );
    // Time for the line to be read and the query to start; Ctrl-C earlier would only clear the
    // line being edited.
    std::thread::sleep(Duration::from_millis(1000));
    pty.control('c');
    pty.expect("cancelled");
    pty.expect(&format!("{db}> "));
    pty.line("SELECT 'still here' AS msg;");
    pty.expect("│ still here │");
    // Ctrl-C at the prompt drops the unfinished statement, Ctrl-D leaves.
    pty.line("SELECT");
    pty.expect("...> ");
    pty.control('c');
    pty.expect(&format!("{db}> "));
    pty.control('d');
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 0);
}

#[test]
fn tab_completes_tables_columns_and_dot_commands() {
    let s = Server::start();
    let db = s.db("complete");
    s.exec(&db, "CREATE TABLE inventory (sku TEXT, quantity INTEGER)");
    s.exec(&db, "INSERT INTO inventory VALUES ('a-1', 7)");
    let mut pty = shell(&s, &db);
    pty.send("SELECT quan\t FROM inv\t;\r");
    pty.expect("│ quantity │");
    pty.expect("│        7 │");
    pty.expect(&format!("{db}> "));
    // Tables created in the session are known at once.
    pty.line("CREATE TABLE shipments (id INTEGER);");
    pty.expect(&format!("{db}> "));
    pty.send(".sch\tship\t\r");
    pty.expect("CREATE TABLE shipments (\r\n  id INTEGER\r\n);");
    pty.line(".quit");
    pty.expect_eof();
}

#[test]
fn begin_commit_and_rollback_use_one_transaction() {
    let s = Server::start();
    let db = s.db("tx");
    s.exec(&db, "CREATE TABLE t (n INTEGER)");
    let mut pty = shell(&s, &db);
    pty.line("BEGIN;");
    pty.expect("transaction started");
    pty.expect(&format!("{db}*> "));
    pty.line("INSERT INTO t VALUES (1);");
    pty.expect("1 row affected");
    pty.line("ROLLBACK;");
    pty.expect("rolled back");
    pty.expect(&format!("{db}> "));
    pty.line("BEGIN; INSERT INTO t VALUES (2); SELECT count(*) AS n FROM t; COMMIT;");
    pty.expect("│ 1 │");
    pty.expect("committed");
    pty.line(".quit");
    pty.expect_eof();
    assert_eq!(
        s.scalar(&db, "SELECT sum(n) FROM t"),
        dbforge::Value::Int(2)
    );
}

#[test]
fn piped_input_runs_without_prompts_and_stops_at_an_error() {
    let s = Server::start();
    let db = s.db("piped");
    s.cmd()
        .args(["shell", &db, "-o", "csv"])
        .write_stdin("CREATE TABLE t (n INTEGER);\nINSERT INTO t VALUES (1), (2);\nSELECT sum(n) AS s\n FROM t;\n.mode ndjson\nSELECT 3 AS n")
        .assert()
        .success()
        .stdout("rows_affected\r\n0\r\nrows_affected\r\n2\r\ns\r\n3\r\n{\"n\":3}\n");
    s.cmd()
        .args(["shell", &db, "-o", "csv"])
        .write_stdin("SELECT 1 AS a;\nSELEC 2;\nSELECT 3 AS c;\n")
        .assert()
        .code(5)
        .stdout("a\r\n1\r\n");
    s.cmd()
        .args(["shell", "no-such-db"])
        .write_stdin("SELECT 1;")
        .assert()
        .code(3);
}

/// On Redis a command ends at the end of its line (Redis commands have no `;`), so a command
/// runs when Enter is pressed and a dot-command on the next line stays one; a `;` still
/// separates commands on one line.
#[test]
fn on_redis_a_newline_ends_a_command() {
    let Some(s) = Server::with_redis() else {
        return;
    };
    let db = s.db_on("sh-redis", dbforge::Backend::Redis);
    let mut cmd = s.std_cmd();
    cmd.env("NO_COLOR", "1").args(["shell", &db]);
    let mut pty = Pty::spawn(cmd);
    pty.expect(&format!("connected to {db} (redis) at {}", s.endpoint()));
    pty.expect("one command per line");
    pty.expect(&format!("{db}> "));
    pty.line("HSET user:1 name Ada");
    pty.expect(&format!("{db}> "));
    pty.line(".mode ndjson");
    pty.expect(&format!("{db}> "));
    pty.line("HGET user:1 name");
    pty.expect("{\"value\":\"Ada\"}");
    pty.expect(&format!("{db}> "));
    pty.line("SET a 1; INCR a");
    pty.expect("{\"value\":2}");
    pty.expect(&format!("{db}> "));
    pty.control('d');
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 0);

    // Piped input reads the same way.
    s.cmd()
        .args(["shell", &db, "-o", "ndjson"])
        .write_stdin("GET a\n.mode csv\nGET a\n")
        .assert()
        .success()
        .stdout("{\"value\":\"2\"}\nvalue\r\n2\r\n");
}

/// A transaction left open past the gateway's idle-session timeout is rolled back there; the
/// next statement, COMMIT included, says so with the timeout, and the prompt leaves
/// transaction mode.
#[test]
fn an_idle_transaction_that_the_gateway_rolled_back_is_reported_and_closed() {
    let s = Server::with(|mut c| {
        c.session_idle_timeout = Duration::from_secs(1);
        c
    });
    let db = s.db("idle");
    s.exec(&db, "CREATE TABLE t (n INTEGER)");
    let mut pty = shell(&s, &db);
    for end in ["COMMIT;", "SELECT 1;"] {
        pty.line("BEGIN;");
        pty.expect(&format!("{db}*> "));
        pty.line("INSERT INTO t VALUES (1);");
        pty.expect("1 row affected");
        pty.expect(&format!("{db}*> "));
        std::thread::sleep(Duration::from_millis(1600));
        pty.line(end);
        let said = pty.expect(&format!("{db}> "));
        assert!(
            said.contains(
                "error: the transaction was rolled back: the session was idle for 1s \
                 (the gateway's --session-idle-timeout)"
            ),
            "{end}: {said}"
        );
        assert!(!said.contains("protocol error"), "{said}");
    }
    pty.line("SELECT count(*) AS n FROM t;");
    pty.expect("│ 0 │");
    pty.line(".quit");
    pty.expect_eof();
}
