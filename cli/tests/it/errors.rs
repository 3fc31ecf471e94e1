//! Exit codes and messages for each class of error, and the help that documents them.

use predicates::prelude::*;

use crate::harness::{KEY, Pty, Server, bin};

#[test]
fn usage_errors_exit_2() {
    let s = Server::start();
    s.cmd().args(["db", "frobnicate"]).assert().code(2);
    s.cmd().args(["sql"]).assert().code(2);
    s.cmd()
        .args(["sql", "x", "SELECT ?", "-p", "int:abc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\"abc\" is not a valid int"));
    s.cmd()
        .args(["db", "create", "x", "--label", "nolabel"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected KEY=VALUE"));
}

/// A missing required choice is named alone: the usage line under it is the command's, not a
/// list of the flags (and environment variables) the user happened to set, which read as if
/// they were required too.
#[test]
fn a_missing_argument_is_named_without_the_flags_that_were_given() {
    let s = Server::start();
    // The harness sets DBFORGE_ENDPOINT and DBFORGE_API_KEY, as a user's shell would.
    let out = s
        .cmd()
        .args(["rows", "update", "app", "people", "--set", "team=red"])
        .args(["-o", "json", "--color", "never"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(
        err,
        "error: the following required arguments were not provided:\n  \
         <--where <COND>|--all>\n\n\
         Usage: dbforge rows update [OPTIONS] --set <COLUMN=VALUE> <--where <COND>|--all> \
         <DATABASE> <TABLE>\n\n\
         For more information, try '--help'.\n"
    );
    for (args, missing) in [
        (
            vec!["rows", "delete", "app", "people", "-o", "json"],
            "<--where <COND>|--all>",
        ),
        (
            vec!["export", "app", "-o", "json"],
            "<--table <TABLE>|--query <SQL>>",
        ),
        (
            vec!["chart", "app", "SELECT 1, 2", "--color", "never"],
            "<--bar|--hbar|--line|--pie>",
        ),
    ] {
        let out = s.cmd().args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(err.contains(missing), "{args:?}: {err}");
        for given in ["--output", "--endpoint", "--api-key", "--color"] {
            assert!(!err.contains(given), "{args:?} lists {given}: {err}");
        }
    }
}

/// The gateway's messages name RPCs; the CLI's name its commands and flags instead.
#[test]
fn gateway_messages_name_cli_flags_instead_of_rpcs() {
    let s = Server::start();
    let db = s.db("rpc-words");
    let out = s
        .cmd()
        .args(["sql", &db, "BEGIN", "--color", "never"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        err.contains("use `dbforge sql --transaction`, or BEGIN … COMMIT in `dbforge shell`"),
        "{err}"
    );
    assert!(
        !err.contains("ExecuteBatch") && !err.contains("Session"),
        "{err}"
    );
    if let Some(r) = Server::with_redis() {
        let cache = r.db_on("rpc-words-redis", dbforge::Backend::Redis);
        let out = r
            .cmd()
            .args(["sql", &cache, "MULTI", "--color", "never"])
            .output()
            .expect("run");
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(
            err.contains("use `dbforge sql --transaction` for MULTI/EXEC"),
            "{err}"
        );
        let out = r
            .cmd()
            .args(["rows", "select", &cache, "users", "--color", "never"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(10));
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert!(
            err.contains("`dbforge rows select` is not supported by the redis backend"),
            "{err}"
        );
        assert!(
            err.contains("use `dbforge sql` with the backend's own commands"),
            "{err}"
        );
        assert!(
            !err.contains("SelectRows") && !err.contains("QueryService"),
            "{err}"
        );
    }
}

#[test]
fn not_found_exits_3_with_a_hint() {
    let s = Server::start();
    s.cmd()
        .args(["sql", "no-such-db", "SELECT 1"])
        .assert()
        .code(3)
        .stderr(
            "error: database \"no-such-db\" not found [NOT_FOUND]\n\
             hint: `dbforge db list` shows the databases there are\n",
        );
}

#[test]
fn already_exists_exits_4() {
    let s = Server::start();
    let db = s.db("dup");
    s.cmd()
        .args(["db", "create", &db])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("[ALREADY_EXISTS]"));
}

#[test]
fn invalid_sql_exits_5() {
    let s = Server::start();
    let db = s.db("bad-sql");
    s.cmd()
        .args(["sql", &db, "SELEC 1"])
        .assert()
        .code(5)
        .stderr(predicate::str::starts_with(
            "error: near \"SELEC\": syntax error",
        ))
        .stderr(predicate::str::contains("[SQL_ERROR]"));
    s.cmd()
        .args(["sql", &db, "SELECT * FROM missing"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("hint: `.tables`"));
    s.cmd()
        .args(["db", "create", "Bad Name!"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("[INVALID_ARGUMENT]"));
}

#[test]
fn permission_and_authentication_exit_6() {
    let s = Server::start();
    let db = s.db("perm");
    s.cmd()
        .args(["sql", &db, "ATTACH 'other.db' AS o"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("[FORBIDDEN]"))
        .stderr(predicate::str::contains(
            "hint: statements cannot reach outside",
        ));
    s.cmd()
        .env_remove("DBFORGE_API_KEY")
        .args(["db", "list"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains("[UNAUTHENTICATED]"))
        .stderr(predicate::str::contains(
            "hint: pass an API key with --api-key",
        ));
    s.cmd()
        .args(["--api-key", "not-the-key-000000000000000", "db", "list"])
        .assert()
        .code(6);
    // The flag and the variable carry the same key.
    s.cmd()
        .env_remove("DBFORGE_API_KEY")
        .args(["--api-key", KEY, "db", "list"])
        .assert()
        .success();
}

#[test]
fn unreachable_and_timeouts_exit_7() {
    let s = Server::start();
    let closed = {
        // A port that was free a moment ago: nothing listens there.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let endpoint = format!("http://{closed}");
    assert_cmd::Command::new(bin())
        .args(["--endpoint", &endpoint, "db", "list"])
        .env_remove("DBFORGE_ENDPOINT")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("Connection refused"))
        .stderr(predicate::str::contains(format!(
            "hint: is the gateway running at {endpoint}?"
        )));
    let db = s.db("slow");
    let forever =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    s.cmd()
        .args(["sql", &db, forever, "--timeout", "300ms"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "error: no answer within 300ms (--timeout) [DEADLINE_EXCEEDED]",
        ))
        .stderr(predicate::str::contains("hint: raise --timeout"));
}

#[test]
fn server_statement_timeout_exits_7() {
    let s = Server::with(|mut c| {
        c.statement_timeout = std::time::Duration::from_millis(200);
        c
    });
    let db = s.db("slow");
    s.cmd()
        .args(["sql", &db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains("[TIMEOUT]"));
}

#[test]
fn constraints_and_preconditions_exit_8() {
    let s = Server::start();
    let db = s.db("constraint");
    s.exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY)");
    s.exec(&db, "INSERT INTO t VALUES (1)");
    s.cmd()
        .args(["sql", &db, "INSERT INTO t VALUES (1)"])
        .assert()
        .code(8)
        .stderr("error: UNIQUE constraint failed: t.id [UNIQUE_VIOLATION]\n");
    s.cmd()
        .args(["db", "create", "pg-one", "--backend", "postgres"])
        .assert()
        .code(8)
        .stderr(predicate::str::contains("[FAILED_PRECONDITION]"));
}

#[test]
fn limits_exit_9() {
    let s = Server::with(|mut c| {
        c.max_message_size = 64 * 1024;
        c
    });
    let db = s.db("limits");
    s.exec(&db, "CREATE TABLE t (body TEXT)");
    let big = format!("[{{\"body\": \"{}\"}}]", "x".repeat(100 * 1024));
    s.cmd()
        .args(["rows", "insert", &db, "t"])
        .write_stdin(big)
        .assert()
        .code(9)
        .stderr(
            predicate::str::contains("[RESOURCE_EXHAUSTED]")
                .or(predicate::str::contains("[LIMIT_EXCEEDED]")),
        );
}

#[test]
fn ctrl_c_interrupts_a_command_with_130() {
    let s = Server::with(|mut c| {
        c.statement_timeout = std::time::Duration::from_secs(10);
        c
    });
    let db = s.db("interrupt");
    // stdout to /dev/null and stderr on the terminal: the progress spinner shows once the query
    // runs, which is when Ctrl-C must cancel it.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" sql \"$1\" \"$2\" -o csv > /dev/null")
        .arg(bin())
        .arg(&db)
        .arg("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c");
    for var in Server::CLEARED {
        cmd.env_remove(var);
    }
    cmd.envs(s.env()).env("NO_COLOR", "1");
    let mut pty = Pty::spawn(cmd);
    pty.expect("rows received");
    pty.control('c');
    pty.expect("error: interrupted");
    pty.expect_eof();
    assert_eq!(pty.exit_code(), 130);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let s = Server::start();
    let db = s.db("pipe");
    // `head` leaves after one line; the rest of the stream meets a closed pipe.
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg("set -o pipefail; \"$0\" sql \"$1\" \"$2\" -o csv | head -n 1")
        .arg(bin())
        .arg(&db)
        .arg("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 200000) SELECT x FROM c");
    for var in Server::CLEARED {
        cmd.env_remove(var);
    }
    let out = cmd.envs(s.env()).output().expect("run sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no error for a closed pipe"
    );
    assert!(out.status.success(), "dbforge exits 0: {:?}", out.status);
}

#[test]
fn help_documents_the_exit_codes_and_every_command_has_help() {
    let out = assert_cmd::Command::new(bin())
        .arg("--help")
        .assert()
        .success();
    let help = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
    for line in [
        "Exit codes:",
        "0    success",
        "2    usage error",
        "3    not found (NOT_FOUND)",
        "4    already exists (ALREADY_EXISTS)",
        "5    invalid SQL or argument",
        "6    permission or authentication",
        "7    unavailable or timed out",
        "8    constraint violation or conflict",
        "9    limit exceeded",
        "10   not supported by the backend",
        "130  interrupted",
        "DBFORGE_ENDPOINT",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }
    let commands: &[&[&str]] = &[
        &["db"],
        &["db", "create"],
        &["db", "list"],
        &["db", "show"],
        &["db", "rm"],
        &["sql"],
        &["table", "create"],
        &["rows", "insert"],
        &["rows", "select"],
        &["rows", "update"],
        &["rows", "delete"],
        &["shell"],
        &["chart"],
        &["config", "show"],
        &["completions"],
        &["key", "create"],
        &["key", "list"],
        &["key", "revoke"],
        &["whoami"],
        &["audit", "list"],
        &["audit", "verify"],
        &["stats"],
    ];
    for c in commands {
        assert_cmd::Command::new(bin())
            .args(*c)
            .arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: dbforge"));
    }
    // The README's exit-code table matches the help's.
    let readme = include_str!("../../README.md");
    for (code, meaning) in [
        ("3", "not found"),
        ("4", "already exists"),
        ("5", "invalid SQL or argument"),
        ("6", "permission or authentication"),
        ("7", "unavailable or timed out"),
        ("8", "constraint violation or conflict"),
        ("9", "limit exceeded"),
        ("10", "not supported by the backend"),
        ("130", "interrupted"),
    ] {
        assert!(
            readme.contains(&format!("| {code} | {meaning}")),
            "README lacks exit code {code}"
        );
    }
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        assert_cmd::Command::new(bin())
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("dbforge").and(predicate::str::contains("shell")));
    }
    assert_cmd::Command::new(bin())
        .args(["completions", "bash"])
        .assert()
        .stdout(predicate::str::contains("complete -F _dbforge"));
}
