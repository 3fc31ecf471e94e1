//! `dbforge-ask-eval`: the execution accuracy of SemanticService.Ask against whichever model
//! endpoint is configured, on the sample shop of `bench/semantic/`.
//!
//! ```text
//! DBFORGE_LLM_API_KEY=... cargo run --release -p dbforge-bench --bin dbforge-ask-eval -- \
//!     --llm-url https://api.openai.com/v1 --llm-model gpt-4o-mini
//! cargo run --release -p dbforge-bench --bin dbforge-ask-eval -- \
//!     --llm-url http://127.0.0.1:11434/v1 --llm-model qwen2.5-coder:7b --backend postgres
//! ```
//!
//! It starts a gateway in this process (its data in a temporary directory) with that model,
//! spawns a database on the chosen engine, loads `shop.sql` (five tables joined by foreign keys,
//! with data), then asks each question of `questions.json` with `run` and compares the rows
//! with those of the question's gold SQL, run on the same database. A question scores when the
//! two results are equal: as multisets of rows (order ignored) unless the gold SQL has an
//! ORDER BY, as sequences then; column names are ignored, numbers compared after rounding to
//! two decimals (engines return averages as floats or decimals), text exactly. Execution
//! accuracy is the share of questions that score. An Ask that fails (an error, or the model gave
//! up) scores nothing. The report prints one line per question and the totals; `--json` writes
//! them as JSON too.

use std::{net::SocketAddr, path::PathBuf, time::Duration, time::Instant};

use clap::{Parser, ValueEnum};
use dbforge::{AskOptions, AskStatus, Client, CreateOptions, Value};
use dbforge_server::{config::Config, core::semantic::model::Secret};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Scores SemanticService.Ask's execution accuracy on the ask-eval set.
#[derive(Debug, Parser)]
#[command(name = "dbforge-ask-eval")]
struct Cli {
    /// The model's OpenAI-compatible endpoint (its key in DBFORGE_LLM_API_KEY).
    #[arg(long, env = "DBFORGE_LLM_URL")]
    llm_url: String,
    /// The model.
    #[arg(long, env = "DBFORGE_LLM_MODEL")]
    llm_model: String,
    /// Time one answer may take.
    #[arg(long, default_value = "120s", value_parser = humantime_secs)]
    llm_timeout: Duration,
    /// The engine the shop is spawned on.
    #[arg(long, value_enum, default_value_t = Engine::Sqlite)]
    backend: Engine,
    /// PostgreSQL admin URL (with --backend postgres).
    #[arg(
        long,
        env = "DBFORGE_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// MySQL/MariaDB admin URL (with --backend mysql).
    #[arg(
        long,
        env = "DBFORGE_MYSQL_URL",
        default_value = "mysql://root@127.0.0.1:3306"
    )]
    mysql_url: String,
    /// The questions and their gold SQL.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/semantic/questions.json"))]
    questions: PathBuf,
    /// The schema and data the questions are about.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/semantic/shop.sql"))]
    schema: PathBuf,
    /// Ask only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    let n = s.trim_end_matches('s');
    n.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?}: write a number of seconds, e.g. 120s"))
}

/// The engine of the eval database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL/MariaDB.
    Mysql,
}

/// One question of the set.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Question {
    /// Its number.
    pub id: u32,
    /// The question.
    pub question: String,
    /// The gold SQL.
    pub sql: String,
}

/// How one question went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The question's number.
    pub id: u32,
    /// Same rows as the gold SQL.
    pub correct: bool,
    /// The model's SQL.
    pub sql: String,
    /// Calls to the model.
    pub rounds: u32,
    /// Why it did not score, when it did not.
    pub note: String,
    /// Time the Ask took, in milliseconds.
    pub millis: u128,
}

/// A value as the comparison sees it: numbers rounded to two decimals, so that `2.5`, the
/// decimal `2.50` and the float `2.4999999` agree; text as is.
fn canonical(v: &Value) -> String {
    let number = match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Decimal(d) => d.parse::<f64>().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    match number {
        Some(n) => format!("n:{:.2}", n),
        None => match v {
            Value::Null => "null".into(),
            Value::Text(t) => format!("t:{t}"),
            other => format!("o:{other:?}"),
        },
    }
}

/// Whether `got` has the same rows as `gold`: in order when `ordered`, as multisets otherwise.
pub fn same_rows(gold: &[Vec<Value>], got: &[Vec<Value>], ordered: bool) -> bool {
    let canon = |rows: &[Vec<Value>]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(canonical).collect())
            .collect()
    };
    let (mut a, mut b) = (canon(gold), canon(got));
    if a.len() != b.len() || a.first().map(Vec::len) != b.first().map(Vec::len) {
        return false;
    }
    if !ordered {
        a.sort();
        b.sort();
    }
    a == b
}

/// Whether the gold SQL fixes the order of its result.
fn ordered(gold_sql: &str) -> bool {
    gold_sql.to_ascii_uppercase().contains("ORDER BY")
}

/// Asks every question on `db` and scores it against its gold SQL.
pub async fn score(client: &Client, db: &str, questions: &[Question]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for q in questions {
        let gold = match client.execute(db, &q.sql, &[]).await {
            Ok(r) => r
                .rows
                .into_iter()
                .map(|r| r.into_values())
                .collect::<Vec<_>>(),
            Err(e) => {
                out.push(Outcome {
                    id: q.id,
                    correct: false,
                    sql: String::new(),
                    rounds: 0,
                    note: format!("the gold SQL fails on this engine: {e}"),
                    millis: 0,
                });
                continue;
            }
        };
        let started = Instant::now();
        let asked = client.ask(db, &q.question, AskOptions::run(10_000)).await;
        let millis = started.elapsed().as_millis();
        let outcome = match asked {
            Err(e) => Outcome {
                id: q.id,
                correct: false,
                sql: String::new(),
                rounds: 0,
                note: format!("error: {e}"),
                millis,
            },
            Ok(a) if a.answer.status != AskStatus::Answered => Outcome {
                id: q.id,
                correct: false,
                sql: a.answer.sql,
                rounds: a.answer.rounds,
                note: format!("gave up: {}", a.answer.message),
                millis,
            },
            Ok(a) => {
                let got: Vec<Vec<Value>> = a.rows.into_iter().map(|r| r.into_values()).collect();
                let correct = same_rows(&gold, &got, ordered(&q.sql));
                Outcome {
                    id: q.id,
                    correct,
                    note: if correct {
                        String::new()
                    } else {
                        format!("{} rows, gold has {}", got.len(), gold.len())
                    },
                    sql: a.answer.sql,
                    rounds: a.answer.rounds,
                    millis,
                }
            }
        };
        out.push(outcome);
    }
    out
}

/// The share of outcomes that scored, 0 to 1.
pub fn accuracy(outcomes: &[Outcome]) -> f64 {
    if outcomes.is_empty() {
        return 0.0;
    }
    outcomes.iter().filter(|o| o.correct).count() as f64 / outcomes.len() as f64
}

/// A gateway in this process with `cfg`, on an ephemeral loopback port.
async fn start_gateway(cfg: Config) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = dbforge_server::server::run(cfg, listener, std::future::pending()).await {
            eprintln!("dbforge-ask-eval: the gateway stopped: {e}");
        }
    });
    Ok(addr)
}

/// Spawns the shop on `backend` and loads `schema`.
async fn load_shop(
    client: &Client,
    backend: dbforge::Backend,
    schema: String,
) -> Result<String, BoxError> {
    let db = "shop".to_owned();
    client
        .create_database(&db, CreateOptions::default().backend(backend))
        .await?;
    client.import_sql(&db, schema).await?;
    Ok(db)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let mut questions: Vec<Question> =
        serde_json::from_str(&std::fs::read_to_string(&cli.questions)?)?;
    if let Some(n) = cli.limit {
        questions.truncate(n);
    }
    let schema = std::fs::read_to_string(&cli.schema)?;
    let dir = tempfile::tempdir()?;
    let (backend, postgres_url, mysql_url) = match cli.backend {
        Engine::Sqlite => (dbforge::Backend::Sqlite, None, None),
        Engine::Postgres => (dbforge::Backend::Postgres, Some(cli.postgres_url), None),
        Engine::Mysql => (dbforge::Backend::Mysql, None, Some(cli.mysql_url)),
    };
    let cfg = Config {
        data_dir: dir.path().into(),
        insecure_no_auth: true,
        disable_audit: true,
        llm_url: Some(cli.llm_url.clone()),
        llm_model: Some(cli.llm_model.clone()),
        llm_timeout: cli.llm_timeout,
        llm_api_key: std::env::var("DBFORGE_LLM_API_KEY").ok().map(Secret::new),
        postgres_url,
        mysql_url,
        ..Config::default()
    };
    let addr = start_gateway(cfg).await?;
    let client = Client::connect(format!("http://{addr}")).await?;
    let db = load_shop(&client, backend, schema).await?;
    eprintln!(
        "asking {} questions of {} on {:?} ...",
        questions.len(),
        cli.llm_model,
        cli.backend
    );
    let outcomes = score(&client, &db, &questions).await;
    for o in &outcomes {
        println!(
            "{:>3} {} rounds={} {:>6} ms  {}{}",
            o.id,
            if o.correct { "PASS" } else { "FAIL" },
            o.rounds,
            o.millis,
            o.sql.replace('\n', " "),
            if o.note.is_empty() {
                String::new()
            } else {
                format!("  -- {}", o.note)
            }
        );
    }
    let passed = outcomes.iter().filter(|o| o.correct).count();
    println!(
        "execution accuracy: {passed}/{} = {:.1}% ({} on {:?})",
        outcomes.len(),
        100.0 * accuracy(&outcomes),
        cli.llm_model,
        cli.backend
    );
    if let Some(path) = cli.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::json!({
                "model": cli.llm_model,
                "backend": format!("{:?}", cli.backend),
                "accuracy": accuracy(&outcomes),
                "outcomes": outcomes,
            }))?,
        )?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../server/tests/it/llm_fixture.rs"]
mod llm_fixture;

#[cfg(test)]
mod tests {
    use super::*;
    use llm_fixture::FakeLlm;

    fn questions() -> Vec<Question> {
        serde_json::from_str(include_str!("../semantic/questions.json")).expect("questions")
    }

    async fn gateway(llm: &FakeLlm) -> (Client, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = Config {
            data_dir: dir.path().into(),
            insecure_no_auth: true,
            llm_url: Some(llm.url()),
            llm_model: Some("fixture".into()),
            ..Config::default()
        };
        let addr = start_gateway(cfg).await.expect("gateway");
        let client = Client::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        let db = load_shop(
            &client,
            dbforge::Backend::Sqlite,
            include_str!("../semantic/shop.sql").into(),
        )
        .await
        .expect("shop");
        (client, db, dir)
    }

    #[test]
    fn the_set_has_at_least_fifty_distinct_questions() {
        let qs = questions();
        assert!(qs.len() >= 50, "{}", qs.len());
        let mut ids: Vec<u32> = qs.iter().map(|q| q.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), qs.len());
    }

    #[test]
    fn rows_compare_as_multisets_unless_ordered() {
        let r = |v: &[i64]| v.iter().map(|i| vec![Value::Int(*i)]).collect::<Vec<_>>();
        assert!(same_rows(&r(&[1, 2, 2]), &r(&[2, 1, 2]), false));
        assert!(!same_rows(&r(&[1, 2, 2]), &r(&[2, 1, 2]), true));
        assert!(!same_rows(&r(&[1, 2, 2]), &r(&[1, 2]), false));
        assert!(same_rows(
            &[vec![Value::Float(2.5)]],
            &[vec![Value::Decimal("2.5000".into())]],
            true
        ));
        assert!(!same_rows(
            &[vec![Value::Text("a".into())]],
            &[vec![Value::Text("A".into())]],
            false
        ));
        assert!(ordered("SELECT a FROM t ORDER BY a") && !ordered("SELECT a FROM t"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_gold_sql_scores_every_question_and_wrong_answers_score_less() {
        let llm = FakeLlm::start().await;
        let (client, db, _dir) = gateway(&llm).await;
        let qs = questions();
        for q in &qs {
            llm.answer(&q.question, &q.sql, "gold");
        }
        let outcomes = score(&client, &db, &qs).await;
        let failed: Vec<_> = outcomes.iter().filter(|o| !o.correct).collect();
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(accuracy(&outcomes), 1.0);

        // Three wrong: other rows, rows out of the gold's order, an unanswerable query. The
        // cache would serve the gold answers again, so the wrong ones are new questions.
        let wrong: Vec<Question> = qs[..5]
            .iter()
            .map(|q| Question {
                question: format!("{} (again)", q.question),
                ..q.clone()
            })
            .collect();
        let answers = [
            "SELECT COUNT(*) + 1 FROM customers",
            &wrong[1].sql,
            "SELECT name FROM categories ORDER BY name DESC",
            "SELECT nothing FROM nowhere",
            &wrong[4].sql,
        ];
        for (q, sql) in wrong.iter().zip(answers) {
            for _ in 0..3 {
                llm.answer(&q.question, sql, "maybe");
            }
        }
        let outcomes = score(&client, &db, &wrong).await;
        let verdicts: Vec<bool> = outcomes.iter().map(|o| o.correct).collect();
        // Question 3 has no ORDER BY, so another order of the same names still scores.
        assert_eq!(verdicts, [false, true, true, false, true], "{outcomes:?}");
        assert!((accuracy(&outcomes) - 0.6).abs() < 1e-9);
        assert!(outcomes[3].note.starts_with("gave up"), "{:?}", outcomes[3]);
    }
}
