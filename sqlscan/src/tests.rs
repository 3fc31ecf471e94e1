#![allow(clippy::unwrap_used)]

use super::*;

fn sqls(stmts: &[Statement]) -> Vec<&str> {
    stmts.iter().map(|s| s.sql.as_str()).collect()
}

/// Feeds `script` in chunks of `size` bytes.
fn chunked(dialect: Dialect, script: &str, size: usize) -> Vec<Statement> {
    let mut s = Splitter::new(dialect, 1 << 20);
    let mut out = Vec::new();
    for chunk in script.as_bytes().chunks(size) {
        out.extend(s.push(chunk).unwrap());
    }
    out.extend(s.finish().unwrap());
    out
}

#[test]
fn every_case_splits_as_the_table_says_in_every_dialect_and_chunking() {
    for case in cases::CASES {
        for dialect in Dialect::ALL {
            let whole = split(dialect, case.script, 1 << 20)
                .unwrap_or_else(|e| panic!("{} on {dialect:?}: {e}", case.name));
            assert_eq!(
                sqls(&whole),
                case.expected(dialect),
                "{} on {dialect:?}",
                case.name
            );
            for size in [1, 2, 3, 7, 64] {
                assert_eq!(
                    chunked(dialect, case.script, size),
                    whole,
                    "{} on {dialect:?} in chunks of {size}",
                    case.name
                );
            }
            // The shell's view: complete statements plus the rest run as the last one.
            let partial = split_complete(dialect, case.script);
            let mut got: Vec<String> = partial.statements.into_iter().map(|s| s.sql).collect();
            if !partial.rest_is_blank {
                got.push(partial.rest.trim().to_owned());
            }
            assert_eq!(got, case.expected(dialect), "{} on {dialect:?}", case.name);
        }
    }
}

#[test]
fn statement_numbers_and_lines() {
    let script = "\n\nSELECT 1;\n-- note\n\nSELECT\n2;";
    let got = split(Dialect::Postgres, script, 1 << 20).unwrap();
    assert_eq!(
        got.iter().map(|s| (s.number, s.line)).collect::<Vec<_>>(),
        vec![(1, 3), (2, 6)]
    );
    assert_eq!(chunked(Dialect::Postgres, script, 1), got);
}

#[test]
fn unterminated_constructs_are_errors_with_lines() {
    for (dialect, script, want) in [
        (
            Dialect::Postgres,
            "SELECT 1;\nSELECT 'open",
            "unterminated string literal starting at line 2 (statement 2)",
        ),
        (
            Dialect::Postgres,
            "SELECT 1; /* open",
            "unterminated block comment starting at line 1 (statement 2)",
        ),
        (
            Dialect::Postgres,
            "SELECT $x$ open",
            "unterminated dollar-quoted string starting at line 1 (statement 1)",
        ),
        (
            Dialect::Sqlite,
            "SELECT [open",
            "unterminated quoted identifier starting at line 1 (statement 1)",
        ),
        (
            Dialect::Mysql,
            "SELECT \"open",
            "unterminated string literal starting at line 1 (statement 1)",
        ),
        (
            Dialect::Sqlite,
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN\nSELECT 1;",
            "statement 1 starting at line 1 ends inside a BEGIN … END block",
        ),
    ] {
        let err = split(dialect, script, 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), want, "{script}");
    }
}

#[test]
fn long_statements_hit_the_limit() {
    let script = format!("SELECT 1;\nINSERT INTO t VALUES ('{}');", "x".repeat(500));
    let err = split(Dialect::Sqlite, &script, 100).unwrap_err();
    assert_eq!(
        err,
        Error::TooLong {
            statement: 2,
            line: 2,
            limit: 100
        }
    );
}

#[test]
fn invalid_utf8_is_refused_with_its_line() {
    let mut s = Splitter::new(Dialect::Sqlite, 1 << 20);
    let err = s.push(b"SELECT 1;\nSELECT '\xff';").unwrap_err();
    assert_eq!(err, Error::InvalidUtf8 { line: 2 });
    let mut s = Splitter::new(Dialect::Sqlite, 1 << 20);
    s.push("SELECT 'é".as_bytes().split_last().unwrap().1)
        .unwrap();
    assert!(matches!(s.finish(), Err(Error::TruncatedUtf8 { line: 1 })));
}

#[test]
fn utf8_cut_by_chunks_is_joined() {
    let got = chunked(Dialect::Sqlite, "SELECT 'héllo; wörld';SELECT 2;", 1);
    assert_eq!(sqls(&got), ["SELECT 'héllo; wörld'", "SELECT 2"]);
}

#[test]
fn blank_text_and_the_unfinished_rest() {
    assert!(is_blank(Dialect::Sqlite, " -- a\n/* b */ "));
    assert!(is_blank(Dialect::Mysql, "# c"));
    assert!(!is_blank(Dialect::Sqlite, "# c"));
    assert!(!is_blank(Dialect::Sqlite, "/* open"));
    assert!(!is_blank(Dialect::Sqlite, "SELECT 1;"));
    let s = split_complete(Dialect::Sqlite, "SELECT 1;\nSELECT 'open;");
    assert_eq!(sqls(&s.statements), ["SELECT 1"]);
    assert_eq!(s.rest, "\nSELECT 'open;");
    assert!(!s.rest_is_blank);
    assert!(split_complete(Dialect::Sqlite, "SELECT 1; -- done\n").rest_is_blank);
    assert!(!split_complete(Dialect::Sqlite, "SELECT 1 /* open ;").rest_is_blank);
    let open = "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;";
    assert!(split_complete(Dialect::Sqlite, open).statements.is_empty());
}

fn kinds(sql: &str, dialect: Dialect) -> Vec<(TokenKind, &str)> {
    Tokens::new(sql, dialect)
        .map(|t| (t.kind, t.text))
        .collect()
}

#[test]
fn tokens_follow_the_dialect() {
    use TokenKind::*;
    assert_eq!(
        kinds(
            "SELECT a$b, $1, E'x\\'y' FROM \"t\" -- c",
            Dialect::Postgres
        ),
        [
            (Word, "SELECT"),
            (Word, "a$b"),
            (Comma, ","),
            (Placeholder, "$1"),
            (Comma, ","),
            (String, "E'x\\'y'"),
            (Word, "FROM"),
            (QuotedIdentifier, "\"t\""),
            (Comment, "-- c"),
        ]
    );
    assert_eq!(
        kinds("SELECT $q$ ) $q$ /* a /* b */ c */ (?)", Dialect::Postgres),
        [
            (Word, "SELECT"),
            (String, "$q$ ) $q$"),
            (Comment, "/* a /* b */ c */"),
            (Open, "("),
            (Placeholder, "?"),
            (Close, ")"),
        ]
    );
    assert_eq!(
        kinds("/*!40101 SET `x` = \"a\\\"\" */ # c", Dialect::Mysql),
        [
            (ExecutableComment, "/*!40101"),
            (Word, "SET"),
            (QuotedIdentifier, "`x`"),
            (Other, "="),
            (String, "\"a\\\"\""),
            (ExecutableComment, "*/"),
            (Comment, "# c"),
        ]
    );
    assert_eq!(
        kinds("[a b] `c` 'd''e' 'open", Dialect::Sqlite),
        [
            (QuotedIdentifier, "[a b]"),
            (QuotedIdentifier, "`c`"),
            (String, "'d''e'"),
            (String, "'open"),
        ]
    );
}

#[test]
fn copy_statements_name_their_table_and_columns_and_nothing_else_does() {
    let t = |sql| copy_from_stdin(Dialect::Postgres, sql);
    assert_eq!(
        t(r#"COPY "Odd ""t""" ("a", b, "C") FROM stdin"#),
        Some(CopyTarget {
            table: "Odd \"t\"".into(),
            columns: vec!["a".into(), "b".into(), "C".into()],
        })
    );
    assert_eq!(
        t("copy T from STDIN"),
        Some(CopyTarget {
            table: "t".into(),
            columns: vec![],
        })
    );
    for other in [
        "COPY t FROM '/etc/passwd'",
        "COPY t TO STDOUT",
        "COPY t FROM STDIN WITH (FORMAT csv)",
        "COPY s.t FROM STDIN",
        "COPY (SELECT 1) TO STDOUT",
        "SELECT 'COPY t FROM STDIN'",
    ] {
        assert_eq!(t(other), None, "{other}");
    }
    assert_eq!(copy_from_stdin(Dialect::Mysql, "COPY t FROM STDIN"), None);
}

/// Splits `script` fed in pieces of `size` bytes, reading copy data as a caller of
/// [`Splitter::with_copy_data`] does: statements, and the data of each COPY up to `\.`.
fn split_with_copies(script: &str, size: usize) -> (Vec<String>, Vec<String>) {
    let mut s = Splitter::new(Dialect::Postgres, 1 << 20).with_copy_data();
    let (mut stmts, mut copies) = (Vec::new(), Vec::new());
    let mut copying: Option<Vec<u8>> = None;
    let pieces = script.as_bytes().chunks(size).map(Some).chain([None]);
    for piece in pieces {
        let mut input = piece.unwrap_or_default().to_vec();
        loop {
            if let Some(data) = copying.as_mut() {
                data.extend_from_slice(&input);
                let Some(end) = data.windows(3).position(|w| w == b"\\.\n") else {
                    break;
                };
                input = data.split_off(end + 3);
                data.truncate(end);
                copies.push(String::from_utf8(copying.take().unwrap()).unwrap());
            }
            let out = if piece.is_some() {
                s.push(&input).unwrap()
            } else {
                let mut out = s.push(&input).unwrap();
                out.extend(s.end_of_input().unwrap());
                out
            };
            stmts.extend(out.into_iter().map(|st| st.sql));
            match s.take_copy_data() {
                Some(rest) => {
                    copying = Some(Vec::new());
                    input = rest;
                }
                None => break,
            }
        }
    }
    assert!(copying.is_none(), "copy data ended");
    stmts.extend(s.finish().unwrap().into_iter().map(|st| st.sql));
    (stmts, copies)
}

#[test]
fn copy_data_is_handed_over_whole_in_any_chunking() {
    let script = "CREATE TABLE t (a int, b text);\nCOPY t (a, b) FROM stdin;\n1\tx;y\n2\t'\n\\.\n\
                  SELECT 1;\nCOPY t FROM stdin;\n\\.\nSELECT 2;\nCOPY t FROM stdin;\n\\.\n";
    for size in [1000, 64, 7, 3, 2, 1] {
        let (stmts, copies) = split_with_copies(script, size);
        assert_eq!(
            stmts,
            [
                "CREATE TABLE t (a int, b text)",
                "COPY t (a, b) FROM stdin",
                "SELECT 1",
                "COPY t FROM stdin",
                "SELECT 2",
                "COPY t FROM stdin"
            ],
            "pieces of {size}"
        );
        assert_eq!(copies, ["\n1\tx;y\n2\t'\n", "\n", "\n"], "pieces of {size}");
    }
    // Without the option, nothing changes for other callers.
    let plain = split(Dialect::Postgres, "COPY t FROM stdin;\nSELECT 1;", 1 << 20).unwrap();
    assert_eq!(sqls(&plain), ["COPY t FROM stdin", "SELECT 1"]);
}
