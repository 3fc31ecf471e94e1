//! What a client's command may do and where its keys are, from Redis' own metadata.
//!
//! The command table comes from `COMMAND` (fetched once per backend over the admin connection
//! and cached): arity, flags, ACL categories and the Redis 7 key specifications of every
//! command and subcommand. Key positions are computed from the key specs exactly as the server
//! computes them (`getKeysUsingKeySpecs` in Redis' db.c), including movable keys (`numkeys`
//! arguments, `STREAMS`/`STORE` keywords), so that the argument the gateway prefixes is the one
//! Redis will treat as a key. A command whose keys cannot be located this way is refused rather
//! than sent with a key left unprefixed (the ACL user would refuse it anyway).

use std::collections::{HashMap, HashSet};

use redis::Value as Resp;

use super::namespace::{DATA_CATEGORIES, DENIED_CATEGORIES, EXTRA_ALLOWED, EXTRA_DENIED};
use crate::core::error::{Error, QueryErrorKind, Result};

/// SCAN's COUNT when the client gives none (see `confine_scan`).
pub(super) const SCAN_COUNT: &[u8] = b"1000";

/// Every command and subcommand of the server, by lowercase name (`get`, `object|encoding`).
#[derive(Debug, Default)]
pub(super) struct CommandTable {
    commands: HashMap<String, CommandInfo>,
}

/// One command's metadata.
#[derive(Debug, Clone)]
pub(super) struct CommandInfo {
    /// Lowercase name; `container|sub` for subcommands.
    pub name: String,
    /// Argument count including the name: exact when positive, a minimum when negative.
    arity: i64,
    flags: HashSet<String>,
    categories: HashSet<String>,
    key_specs: Vec<KeySpec>,
    has_subcommands: bool,
}

#[derive(Debug, Clone)]
struct KeySpec {
    not_key: bool,
    incomplete: bool,
    begin: BeginSearch,
    find: FindKeys,
}

#[derive(Debug, Clone)]
enum BeginSearch {
    Index(i64),
    Keyword { keyword: String, startfrom: i64 },
    Unknown,
}

#[derive(Debug, Clone)]
enum FindKeys {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
    Unknown,
}

fn text(v: &Resp) -> Option<String> {
    match v {
        Resp::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Resp::SimpleString(s) => Some(s.clone()),
        Resp::VerbatimString { text, .. } => Some(text.clone()),
        Resp::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Resp) -> Option<i64> {
    match v {
        Resp::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

fn list(v: &Resp) -> &[Resp] {
    match v {
        Resp::Array(items) | Resp::Set(items) => items,
        _ => &[],
    }
}

/// Field/value pairs of a RESP3 map or of its RESP2 form, a flat array.
fn pairs(v: &Resp) -> Vec<(String, &Resp)> {
    match v {
        Resp::Map(entries) => entries
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        other => list(other)
            .chunks_exact(2)
            .filter_map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
    }
}

fn field<'a>(fields: &'a [(String, &'a Resp)], name: &str) -> Option<&'a Resp> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

fn field_int(fields: &[(String, &Resp)], name: &str) -> Option<i64> {
    field(fields, name).and_then(int)
}

impl KeySpec {
    fn parse(v: &Resp) -> Option<Self> {
        let fields = pairs(v);
        let flags: Vec<String> = field(&fields, "flags")
            .map(list)
            .unwrap_or_default()
            .iter()
            .filter_map(text)
            .map(|f| f.to_ascii_lowercase())
            .collect();
        let begin = pairs(field(&fields, "begin_search")?);
        let begin_spec = pairs(field(&begin, "spec")?);
        let begin = match text(field(&begin, "type")?)?.as_str() {
            "index" => BeginSearch::Index(field_int(&begin_spec, "index")?),
            "keyword" => BeginSearch::Keyword {
                keyword: text(field(&begin_spec, "keyword")?)?,
                startfrom: field_int(&begin_spec, "startfrom")?,
            },
            _ => BeginSearch::Unknown,
        };
        let find = pairs(field(&fields, "find_keys")?);
        let find_spec = pairs(field(&find, "spec")?);
        let find = match text(field(&find, "type")?)?.as_str() {
            "range" => FindKeys::Range {
                lastkey: field_int(&find_spec, "lastkey")?,
                keystep: field_int(&find_spec, "keystep")?,
                limit: field_int(&find_spec, "limit")?,
            },
            "keynum" => FindKeys::Keynum {
                keynumidx: field_int(&find_spec, "keynumidx")?,
                firstkey: field_int(&find_spec, "firstkey")?,
                keystep: field_int(&find_spec, "keystep")?,
            },
            _ => FindKeys::Unknown,
        };
        Some(Self {
            not_key: flags.iter().any(|f| f == "not_key"),
            incomplete: flags.iter().any(|f| f == "incomplete"),
            begin,
            find,
        })
    }
}

impl CommandTable {
    /// Parses the reply of `COMMAND` (RESP2 or RESP3).
    pub fn parse(reply: &Resp) -> Result<Self> {
        let mut table = Self::default();
        for entry in list(reply) {
            table.add(entry)?;
        }
        if table.commands.is_empty() {
            return Err(Error::internal("COMMAND returned no commands"));
        }
        Ok(table)
    }

    fn add(&mut self, entry: &Resp) -> Result<()> {
        let bad = || Error::internal("unexpected COMMAND reply from the Redis server");
        let e = list(entry);
        if e.len() < 10 {
            return Err(bad());
        }
        let name = text(&e[0]).ok_or_else(bad)?.to_ascii_lowercase();
        let set = |v: &Resp| -> HashSet<String> {
            list(v)
                .iter()
                .filter_map(text)
                .map(|s| s.trim_start_matches('@').to_ascii_lowercase())
                .collect()
        };
        let info = CommandInfo {
            arity: int(&e[1]).ok_or_else(bad)?,
            flags: set(&e[2]),
            categories: set(&e[6]),
            key_specs: list(&e[8])
                .iter()
                .map(|s| KeySpec::parse(s).ok_or_else(bad))
                .collect::<Result<_>>()?,
            has_subcommands: !list(&e[9]).is_empty(),
            name: name.clone(),
        };
        for sub in list(&e[9]) {
            self.add(sub)?;
        }
        self.commands.insert(name, info);
        Ok(())
    }

    /// The command (or subcommand) `argv` invokes.
    pub fn lookup(&self, argv: &[Vec<u8>]) -> Result<&CommandInfo> {
        let name = lower(&argv[0]);
        let info = self.commands.get(&name).ok_or_else(|| {
            syntax(format!(
                "unknown command '{}'",
                String::from_utf8_lossy(&argv[0])
            ))
        })?;
        if !info.has_subcommands {
            return Ok(info);
        }
        let sub = argv.get(1).map(|s| lower(s)).unwrap_or_default();
        self.commands.get(&format!("{name}|{sub}")).ok_or_else(|| {
            syntax(format!(
                "unknown subcommand '{sub}' of '{name}'; try {} HELP",
                name.to_ascii_uppercase()
            ))
        })
    }
}

fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

fn eq_ignore_case(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// An error as Redis itself would report it (code `ERR`), classified as a syntax error.
fn syntax(message: String) -> Error {
    Error::Query {
        kind: QueryErrorKind::Syntax,
        code: Some("ERR".into()),
        message: format!("ERR {message}"),
        statement_index: None,
    }
}

/// A command the gateway refuses because it would leave the database's namespace or affect the
/// server. The code is the one Redis gives an ACL user for the same command.
fn forbidden(message: String) -> Error {
    Error::Query {
        kind: QueryErrorKind::Forbidden,
        code: Some("NOPERM".into()),
        message,
        statement_index: None,
    }
}

/// How a planned command is run and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Shape {
    /// Sent once; the reply is the result.
    Plain,
    /// A cursor command: `Query` iterates it to the end, `Execute` returns one page.
    Cursor(Cursor),
    /// KEYS, emulated with SCAN so the server never runs an O(all keys) command for a tenant.
    /// Holds the confined pattern.
    Keys(Vec<u8>),
}

/// The cursor commands and what their pages hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cursor {
    /// SCAN: key names.
    Keys,
    /// SSCAN: members.
    Set,
    /// HSCAN: fields and values (fields only with NOVALUES).
    Hash {
        /// Whether values follow each field.
        values: bool,
    },
    /// ZSCAN: members and scores.
    SortedSet,
}

impl Cursor {
    /// Where the cursor argument is.
    pub fn cursor_index(self) -> usize {
        match self {
            Cursor::Keys => 1,
            _ => 2,
        }
    }

    /// The columns of a streamed page.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Cursor::Keys => &["key"],
            Cursor::Set => &["member"],
            Cursor::Hash { values: true } => &["field", "value"],
            Cursor::Hash { values: false } => &["field"],
            Cursor::SortedSet => &["member", "score"],
        }
    }
}

/// Where key names come back in a reply, so the prefix can be stripped from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplyKeys {
    /// Nowhere.
    None,
    /// `[cursor, [key, …]]` (SCAN).
    ScanPage,
    /// `[key, …]` or nil (LMPOP, ZMPOP).
    First,
    /// A map of stream key to entries, or its RESP2 form `[[key, entries], …]` (XREAD).
    Streams,
}

/// A command ready to send: validated against the policy, keys prefixed.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The command's name (`set`, `object|encoding`), for messages.
    pub name: String,
    /// The arguments to send, the command name first.
    pub args: Vec<Vec<u8>>,
    /// How it runs.
    pub shape: Shape,
    /// Where its reply names keys.
    pub reply_keys: ReplyKeys,
    /// Whether it may write (Redis' `write` flag): such a command cannot be undone once sent.
    pub writes: bool,
}

/// Validates a client's command against the policy and maps its keys into `prefix`.
pub(super) fn plan(table: &CommandTable, mut argv: Vec<Vec<u8>>, prefix: &[u8]) -> Result<Plan> {
    let info = table.lookup(&argv)?;
    let name = info.name.clone();
    check_policy(info)?;
    let argc = argv.len() as i64;
    if (info.arity > 0 && argc != info.arity) || (info.arity < 0 && argc < -info.arity) {
        let shown = name.split('|').next().unwrap_or(&name);
        return Err(syntax(format!(
            "wrong number of arguments for '{shown}' command"
        )));
    }
    let mut shape = Shape::Plain;
    let mut reply_keys = ReplyKeys::None;
    let keys = match name.as_str() {
        "keys" => {
            // KEYS pattern: every match must start with the prefix, whatever the pattern holds,
            // because the prefix is matched literally before the client's pattern begins.
            let pattern = [prefix, &argv[1]].concat();
            return Ok(Plan {
                name,
                args: argv,
                shape: Shape::Keys(pattern),
                reply_keys: ReplyKeys::None,
                writes: false,
            });
        }
        "scan" => {
            confine_scan(&mut argv, prefix)?;
            shape = Shape::Cursor(Cursor::Keys);
            reply_keys = ReplyKeys::ScanPage;
            Vec::new()
        }
        "sort" | "sort_ro" => sort_keys(&argv)?,
        _ => {
            match name.as_str() {
                "copy" => refuse_copy_to_other_db(&argv)?,
                "xread" | "xreadgroup" => refuse_block(&argv)?,
                _ => {}
            }
            match name.as_str() {
                "sscan" => shape = Shape::Cursor(Cursor::Set),
                "zscan" => shape = Shape::Cursor(Cursor::SortedSet),
                "hscan" => {
                    let values = !argv[3..].iter().any(|a| eq_ignore_case(a, "NOVALUES"));
                    shape = Shape::Cursor(Cursor::Hash { values });
                }
                "lmpop" | "zmpop" => reply_keys = ReplyKeys::First,
                "xread" | "xreadgroup" => reply_keys = ReplyKeys::Streams,
                _ => {}
            }
            key_positions(info, &argv)?
        }
    };
    for pos in keys {
        argv[pos] = [prefix, &argv[pos]].concat();
    }
    Ok(Plan {
        writes: info.flags.contains("write"),
        name,
        args: argv,
        shape,
        reply_keys,
    })
}

/// The allowlist: a command runs when it is in a data category and in none of the denied
/// ones, or is one of the listed exceptions. Transaction control is a usage error, as on the
/// SQL backends.
fn check_policy(info: &CommandInfo) -> Result<()> {
    let name = info.name.as_str();
    let base = name.split('|').next().unwrap_or(name);
    if matches!(base, "multi" | "exec" | "discard" | "watch" | "unwatch") {
        return Err(Error::invalid(
            "sql",
            format!(
                "{} is not accepted here: use ExecuteBatch with `transaction` for MULTI/EXEC",
                base.to_ascii_uppercase()
            ),
        ));
    }
    let shown = name.replace('|', " ").to_ascii_uppercase();
    if EXTRA_DENIED.contains(&name) {
        return Err(forbidden(format!(
            "{shown} is refused: it reaches beyond this database's keys (other logical \
             databases, or every tenant's keys)"
        )));
    }
    if name == "keys" || EXTRA_ALLOWED.contains(&name) {
        return Ok(());
    }
    let denied = first_in(info, DENIED_CATEGORIES);
    if first_in(info, DATA_CATEGORIES).is_some() && denied.is_none() {
        return Ok(());
    }
    let why = match denied {
        Some("scripting") => {
            "scripts and functions are refused: a script can build key names the gateway \
             cannot confine, and loaded scripts are shared by the whole server"
        }
        Some("pubsub") => "pub/sub is refused: channels are shared by the whole server",
        Some("blocking") => {
            "blocking commands are refused: they would hold the database's shared connection \
             (use the non-blocking form, e.g. LPOP instead of BLPOP)"
        }
        _ => "it acts on the server or the connection, not on this database's keys",
    };
    Err(forbidden(format!("{shown} is refused: {why}")))
}

/// The first of `categories` the command belongs to.
fn first_in(info: &CommandInfo, categories: &[&'static str]) -> Option<&'static str> {
    categories
        .iter()
        .copied()
        .find(|c| info.categories.contains(*c))
}

/// Rewrites SCAN's MATCH patterns into the prefix, adding one when the client gave none, and
/// adds `COUNT 1000` when the client gave no COUNT: SCAN visits the buckets of the whole server,
/// and with Redis' default of 10 a tenant on a busy server would get mostly empty pages.
fn confine_scan(argv: &mut Vec<Vec<u8>>, prefix: &[u8]) -> Result<()> {
    let (mut matched, mut counted) = (false, false);
    let mut i = 2;
    while i < argv.len() {
        let known = ["MATCH", "COUNT", "TYPE"]
            .iter()
            .any(|o| eq_ignore_case(&argv[i], o));
        if !known || i + 1 >= argv.len() {
            // Never send a SCAN whose options the gateway did not understand: one of them
            // could be a pattern it failed to confine.
            return Err(syntax("syntax error".into()));
        }
        if eq_ignore_case(&argv[i], "MATCH") {
            argv[i + 1] = [prefix, &argv[i + 1]].concat();
            matched = true;
        }
        counted |= eq_ignore_case(&argv[i], "COUNT");
        i += 2;
    }
    if !matched {
        argv.push(b"MATCH".to_vec());
        argv.push([prefix, b"*"].concat());
    }
    if !counted {
        argv.push(b"COUNT".to_vec());
        argv.push(SCAN_COUNT.to_vec());
    }
    Ok(())
}

/// SORT's keys: the sorted key and the STORE destination. BY and GET name other keys through
/// patterns filled in with the elements' values, which cannot be confined: BY is refused unless
/// its pattern has no `*` (then it names no key and only turns sorting off, e.g. `BY nosort`),
/// and GET always (Redis refuses even `GET #` to a user confined to a key pattern).
fn sort_keys(argv: &[Vec<u8>]) -> Result<Vec<usize>> {
    let mut keys = vec![1];
    let mut i = 2;
    while i < argv.len() {
        let value = argv.get(i + 1);
        if eq_ignore_case(&argv[i], "BY") {
            if value.is_some_and(|p| p.contains(&b'*')) {
                return Err(forbidden(
                    "SORT ... BY <pattern> is refused: the pattern names keys outside the \
                     command's key arguments (BY nosort is fine)"
                        .into(),
                ));
            }
            i += 2;
        } else if eq_ignore_case(&argv[i], "GET") {
            return Err(forbidden(
                "SORT ... GET is refused: its pattern names keys outside the command's key \
                 arguments"
                    .into(),
            ));
        } else if eq_ignore_case(&argv[i], "LIMIT") {
            i += 3;
        } else if eq_ignore_case(&argv[i], "STORE") {
            if value.is_some() {
                keys.push(i + 1);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(keys)
}

fn refuse_copy_to_other_db(argv: &[Vec<u8>]) -> Result<()> {
    if argv[3..].iter().any(|a| eq_ignore_case(a, "DB")) {
        return Err(forbidden(
            "COPY ... DB is refused: a database's keys live in one logical database".into(),
        ));
    }
    Ok(())
}

fn refuse_block(argv: &[Vec<u8>]) -> Result<()> {
    let options = argv
        .iter()
        .take_while(|a| !eq_ignore_case(a, "STREAMS"))
        .skip(1);
    for a in options {
        if eq_ignore_case(a, "BLOCK") {
            return Err(forbidden(
                "XREAD/XREADGROUP with BLOCK is refused: blocking commands would hold the \
                 database's shared connection (poll without BLOCK)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The positions of the key arguments, from the command's key specs: a port of Redis'
/// `getKeysUsingKeySpecs`, so the gateway and the server agree on which arguments are keys.
fn key_positions(info: &CommandInfo, argv: &[Vec<u8>]) -> Result<Vec<usize>> {
    let argc = argv.len() as i64;
    let unresolvable = || {
        syntax(format!(
            "the key arguments of '{}' cannot be located in this command line (check numkeys \
             and the number of keys)",
            info.name
        ))
    };
    let mut keys = Vec::new();
    for spec in &info.key_specs {
        if spec.not_key {
            continue;
        }
        let first = match &spec.begin {
            BeginSearch::Index(i) => *i,
            BeginSearch::Keyword { keyword, startfrom } => {
                let (start, end) = if *startfrom > 0 {
                    (*startfrom, argc - 1)
                } else {
                    (argc + startfrom, 1)
                };
                let mut found = None;
                let mut i = start;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if eq_ignore_case(&argv[i as usize], keyword) {
                        found = Some(i + 1);
                        break;
                    }
                    i += if start <= end { 1 } else { -1 };
                }
                match found {
                    Some(f) => f,
                    // An optional keyword (STORE, STREAMS) that is absent names no keys.
                    None => continue,
                }
            }
            BeginSearch::Unknown => return Err(unresolvable()),
        };
        let (first, last, step) = match spec.find {
            FindKeys::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, keystep)
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                let at = first + keynumidx;
                if at < 0 || at >= argc {
                    return Err(unresolvable());
                }
                let numkeys: i64 = std::str::from_utf8(&argv[at as usize])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| syntax("numkeys should be a non-negative integer".into()))?;
                if numkeys == 0 {
                    // Nothing to map; Redis reports whether zero keys are acceptable.
                    continue;
                }
                let first = first + firstkey;
                (first, first + numkeys - 1, keystep)
            }
            FindKeys::Unknown => return Err(unresolvable()),
        };
        if last >= argc || last < first || first >= argc || first < 1 || step < 1 {
            return Err(unresolvable());
        }
        let mut i = first;
        while i <= last {
            keys.push(i as usize);
            i += step;
        }
        if spec.incomplete {
            return Err(unresolvable());
        }
    }
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Resp {
        Resp::BulkString(s.as_bytes().to_vec())
    }

    fn arr(items: Vec<Resp>) -> Resp {
        Resp::Array(items)
    }

    fn spec(begin: Resp, find: Resp) -> Resp {
        arr(vec![
            bulk("flags"),
            arr(vec![]),
            bulk("begin_search"),
            begin,
            bulk("find_keys"),
            find,
        ])
    }

    fn index(i: i64) -> Resp {
        arr(vec![
            bulk("type"),
            bulk("index"),
            bulk("spec"),
            arr(vec![bulk("index"), Resp::Int(i)]),
        ])
    }

    fn range(lastkey: i64, keystep: i64, limit: i64) -> Resp {
        arr(vec![
            bulk("type"),
            bulk("range"),
            bulk("spec"),
            arr(vec![
                bulk("lastkey"),
                Resp::Int(lastkey),
                bulk("keystep"),
                Resp::Int(keystep),
                bulk("limit"),
                Resp::Int(limit),
            ]),
        ])
    }

    fn command(name: &str, arity: i64, cats: &[&str], specs: Vec<Resp>) -> Resp {
        arr(vec![
            bulk(name),
            Resp::Int(arity),
            arr(vec![]),
            Resp::Int(0),
            Resp::Int(0),
            Resp::Int(0),
            arr(cats.iter().map(|c| bulk(c)).collect()),
            arr(vec![]),
            arr(specs),
            arr(vec![]),
        ])
    }

    /// A small table in the RESP2 shape of `COMMAND`; the full table is exercised against a
    /// live server in the backend's tests.
    fn table() -> CommandTable {
        let keyword = arr(vec![
            bulk("type"),
            bulk("keyword"),
            bulk("spec"),
            arr(vec![
                bulk("keyword"),
                bulk("STREAMS"),
                bulk("startfrom"),
                Resp::Int(1),
            ]),
        ]);
        let keynum = arr(vec![
            bulk("type"),
            bulk("keynum"),
            bulk("spec"),
            arr(vec![
                bulk("keynumidx"),
                Resp::Int(0),
                bulk("firstkey"),
                Resp::Int(1),
                bulk("keystep"),
                Resp::Int(1),
            ]),
        ]);
        CommandTable::parse(&arr(vec![
            command(
                "mset",
                -3,
                &["@write", "@string"],
                vec![spec(index(1), range(-1, 2, 0))],
            ),
            command(
                "xread",
                -4,
                &["@read", "@stream", "@blocking"],
                vec![spec(keyword, range(-1, 1, 2))],
            ),
            command(
                "zunionstore",
                -4,
                &["@write", "@sortedset"],
                vec![spec(index(1), range(0, 1, 0)), spec(index(2), keynum)],
            ),
            command(
                "flushall",
                -1,
                &["@keyspace", "@write", "@dangerous"],
                vec![],
            ),
        ]))
        .expect("table")
    }

    fn args(line: &[&str]) -> Vec<Vec<u8>> {
        line.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn planned(line: &[&str]) -> Result<Vec<String>> {
        let p = plan(&table(), args(line), b"p:")?;
        Ok(p.args
            .into_iter()
            .map(|a| String::from_utf8(a).expect("utf8"))
            .collect())
    }

    #[test]
    fn keys_are_found_by_range_keyword_and_keynum() {
        assert_eq!(
            planned(&["MSET", "a", "1", "b", "2"]).expect("plan"),
            ["MSET", "p:a", "1", "p:b", "2"]
        );
        assert_eq!(
            planned(&["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"]).expect("plan"),
            ["XREAD", "COUNT", "2", "STREAMS", "p:s1", "p:s2", "0", "0"]
        );
        assert_eq!(
            planned(&["zunionstore", "d", "2", "a", "b", "WEIGHTS", "1", "2"]).expect("plan"),
            ["zunionstore", "p:d", "2", "p:a", "p:b", "WEIGHTS", "1", "2"]
        );
    }

    #[test]
    fn scan_is_confined_to_the_prefix() {
        let mut argv = args(&["SCAN", "0"]);
        confine_scan(&mut argv, b"p:").expect("confine");
        assert_eq!(argv, args(&["SCAN", "0", "MATCH", "p:*", "COUNT", "1000"]));
        let mut argv = args(&["SCAN", "7", "match", "u*", "COUNT", "5", "TYPE", "hash"]);
        confine_scan(&mut argv, b"p:").expect("confine");
        assert_eq!(
            argv,
            args(&["SCAN", "7", "match", "p:u*", "COUNT", "5", "TYPE", "hash"])
        );
        for bad in [&["SCAN", "0", "MATCH"][..], &["SCAN", "0", "NOVALUES", "x"]] {
            assert!(confine_scan(&mut args(bad), b"p:").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unlocatable_keys_and_bad_arity_are_syntax_errors() {
        let kind = |r: Result<Vec<String>>| match r {
            Err(Error::Query { kind, .. }) => kind,
            other => panic!("expected a query error, got {other:?}"),
        };
        assert_eq!(
            kind(planned(&["zunionstore", "d", "5", "a", "b"])),
            QueryErrorKind::Syntax
        );
        assert_eq!(
            kind(planned(&["zunionstore", "d", "x", "a"])),
            QueryErrorKind::Syntax
        );
        assert_eq!(kind(planned(&["MSET", "a"])), QueryErrorKind::Syntax);
        assert_eq!(kind(planned(&["NOPE"])), QueryErrorKind::Syntax);
        assert_eq!(kind(planned(&["FLUSHALL"])), QueryErrorKind::Forbidden);
        assert_eq!(
            kind(planned(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])),
            QueryErrorKind::Forbidden
        );
    }
}
