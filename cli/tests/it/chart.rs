//! `dbforge chart`: each kind rendered for a fixed result, exactly.

use predicates::prelude::*;

use crate::harness::{Server, stdout};

fn sales(s: &Server) -> String {
    let db = s.db("sales");
    s.exec(&db, "CREATE TABLE sales (region TEXT, amount INTEGER)");
    s.exec(
        &db,
        "INSERT INTO sales VALUES ('north', 120), ('south', 80), ('east', 40), ('west', 160)",
    );
    db
}

fn chart(s: &Server, db: &str, kind: &str) -> String {
    let out = s
        .cmd()
        .args([
            "chart",
            db,
            "SELECT region, amount FROM sales ORDER BY rowid",
            kind,
        ])
        .args(["--width", "40", "--height", "4", "--color", "never"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

#[test]
fn horizontal_bars() {
    let s = Server::start();
    let db = sales(&s);
    assert_eq!(
        chart(&s, &db, "--hbar"),
        "\
north │█████████████████████▊        120
south │██████████████▌                80
east  │███████▎                       40
west  │█████████████████████████████ 160
"
    );
}

#[test]
fn vertical_bars() {
    let s = Server::start();
    let db = sales(&s);
    assert_eq!(
        chart(&s, &db, "--bar"),
        "\
160 ┤                   █████
    │ █████             █████
    │ █████ █████       █████
  0 ┤ █████ █████ █████ █████
    └────────────────────────
      north south east  west
      120   80    40    160
"
    );
}

#[test]
fn pie_is_a_labelled_breakdown() {
    let s = Server::start();
    let db = sales(&s);
    assert_eq!(
        chart(&s, &db, "--pie"),
        "\
████████████▓▓▓▓▓▓▓▓▒▒▒▒░░░░░░░░░░░░░░░░
██ north  120   30.0%
▓▓ south   80   20.0%
▒▒ east    40   10.0%
░░ west   160   40.0%
   total  400  100.0%
"
    );
}

#[test]
fn line_through_the_values() {
    let s = Server::start();
    let db = sales(&s);
    assert_eq!(
        chart(&s, &db, "--line"),
        "\
160 ┤                                ⣀⠔⠊
    │⠒⠢⠤⢄⣀⣀                       ⣀⠔⠊
    │      ⠉⠉⠑⠒⠢⠤⠤⣀⣀           ⡠⠔⠉
 40 ┤               ⠉⠉⠑⠒⠒⠤⠤⣀⡠⠔⠉
    └───────────────────────────────────
     north                          west
"
    );
}

#[test]
fn charts_need_a_label_and_a_number() {
    let s = Server::start();
    let db = sales(&s);
    s.cmd()
        .args(["chart", &db, "SELECT region FROM sales", "--hbar"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("a chart needs two"));
    s.cmd()
        .args(["chart", &db, "SELECT region, region FROM sales", "--pie"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("is not a number"));
    s.cmd()
        .args(["chart", &db, "SELECT region, -amount FROM sales", "--bar"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("use --line"));
    s.cmd()
        .args([
            "chart",
            &db,
            "SELECT region, amount FROM sales",
            "--max-rows",
            "3",
            "--hbar",
        ])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("more than 3 rows"));
    s.cmd()
        .args([
            "chart",
            &db,
            "SELECT region, amount FROM sales",
            "--bar",
            "--pie",
        ])
        .assert()
        .code(2);
}
