//! Calls on another gateway's SQLite database, forwarded to that gateway.
//!
//! A SQLite database lives on the disk of the gateway that spawned it (its node, recorded in
//! the catalog). Gateways sharing the catalog list each other's SQLite databases
//! ([`Registry::remote_owner`](crate::core::registry::Registry::remote_owner)), and a call on
//! one made through another gateway is sent on to the owner as it came: the same HTTP/2 request
//! (method, headers with the caller's `authorization`, `grpc-timeout`, the message stream), so
//! the owner authenticates, authorizes, audits and runs it as if the caller had called it. The
//! answer streams back the same way, frame by frame: HTTP/2 flow control on both hops is the
//! backpressure, and neither gateway holds more than a window of a stream.
//!
//! Which database a call names is read from its first message, before anything else runs: the
//! first message is held (at most `--max-message-size`), its field 1 (or field 1 of field 1,
//! for the imports, whose first message wraps a header) decoded, and the message put back in
//! front of the rest of the stream. Calls that name no database, name one of this gateway's,
//! or come compressed go on to this gateway's services untouched. Interactive sessions are
//! relayed message by message instead ([`relay_session`]): their database is named by a
//! `begin` that may come after other messages.
//!
//! - **Hop limit.** A forwarded request carries `x-dbforge-forwarded-by: <node>`. A gateway
//!   never forwards such a request again: if the database is not its own either (the gateways'
//!   views of the catalog disagree for a moment), the call fails with UNAVAILABLE.
//! - **Owner down.** The owner's address comes from its heartbeat (`nodes`). An owner whose
//!   heartbeat is older than `--scheduler-lease`, or that cannot be reached, makes the call fail
//!   with UNAVAILABLE naming the owner; every other database keeps working.
//! - **Placement.** CreateDatabase of a SQLite database goes to the gateway its `node` names,
//!   or else to the live gateway with the most free space for its data (the called one when
//!   it has as much within 1 %, [`placement`]); a name that is another gateway's already goes
//!   to that gateway, which answers as CreateDatabase does for an existing name.
//! - **Transport.** Gateways reach each other over HTTP/2 at the address in their heartbeat:
//!   plain when this gateway serves plain, TLS when it serves TLS ([`PeerTransport`]). Over
//!   TLS the peer's certificate must chain to `--tls-peer-ca` (default `--tls-client-ca`) and
//!   name the address's host, and the gateway presents its own `--tls-cert` as its client
//!   certificate, so peers that require one (mutual TLS) accept it. A TLS gateway with neither
//!   CA does not forward (UNAVAILABLE, saying which flag to set).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, extract::Request, middleware::Next, response::Response};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use http_body_util::BodyExt;
use prost::Message;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt;
use tracing::debug;

use crate::{
    core::{forge::Forge, lease::placement},
    pb,
};

/// The header that marks a forwarded request, with the forwarding gateway's node name.
pub const FORWARDED_BY: &str = "x-dbforge-forwarded-by";

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a call's first message names its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    /// Field 1, a string.
    Top,
    /// Field 1 of the message in field 1 (a header or `begin`).
    Nested,
}

/// The calls that name a database, by path, and where.
fn named(path: &str) -> Option<Named> {
    let (service, method) = path.strip_prefix("/dbforge.v1.")?.split_once('/')?;
    let top = match service {
        // Not Session: a client may wait for the answer's headers before it sends its first
        // message, and that message may be a statement before `begin`; the Session handler
        // relays a session whose `begin` names another gateway's database ([`relay_session`]).
        "QueryService" => matches!(method, "Execute" | "Query" | "ExecuteBatch" | "Preview"),
        "SchemaService" => matches!(method, "GetSchema" | "Explain"),
        "TableService" => matches!(
            method,
            "CreateTable" | "InsertRows" | "SelectRows" | "UpdateRows" | "DeleteRows"
        ),
        "TransferService" => match method {
            "ImportCsv" | "ImportSql" | "ImportNdjson" | "ImportRdf" => {
                return Some(Named::Nested);
            }
            "ExportTable" | "ExportQuery" | "DumpDatabase" => true,
            _ => false,
        },
        "SemanticService" => matches!(method, "Ask" | "AskStream"),
        "DatabaseService" => matches!(
            method,
            "CreateDatabase" | "GetDatabase" | "DeleteDatabase" | "UpdateDatabase" | "ForkDatabase"
        ),
        "BackupService" => method == "CreateBackup",
        _ => false,
    };
    top.then_some(Named::Top)
}

/// Field 1 as a string; prost skips every other field.
#[derive(Clone, PartialEq, prost::Message)]
struct Top {
    #[prost(string, tag = "1")]
    database: String,
}

/// What CreateDatabase says about where the new database goes.
#[derive(Clone, PartialEq, prost::Message)]
struct Create {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    backend: i32,
    #[prost(string, tag = "9")]
    node: String,
}

/// Field 1 as a message holding [`Top`].
#[derive(Clone, PartialEq, prost::Message)]
struct Nested {
    #[prost(message, optional, tag = "1")]
    head: Option<Top>,
}

/// The database a first message (one gRPC frame's payload) names, if it decodes.
fn database_of(named: Named, message: &[u8]) -> Option<String> {
    let name = match named {
        Named::Top => Top::decode(message).ok()?.database,
        Named::Nested => Nested::decode(message).ok()?.head?.database,
    };
    (!name.is_empty()).then_some(name)
}

/// What the forwarding layer needs: the Forge (registry, live nodes) and a connection per peer.
#[derive(Debug)]
pub struct Forwarder {
    forge: Forge,
    /// Largest first message held while reading the database's name.
    max_message: usize,
    /// How it reaches the other gateways.
    transport: PeerTransport,
    channels: Mutex<HashMap<String, Channel>>,
}

/// How a gateway reaches the others (see the module docs).
#[derive(Debug, Clone)]
pub enum PeerTransport {
    /// Plain HTTP/2: this gateway serves plain too.
    Plain,
    /// TLS, trusting the peers' CA and presenting this gateway's certificate.
    Tls(ClientTlsConfig),
    /// This gateway serves TLS but trusts no CA for its peers: it does not forward.
    Untrusted,
}

impl Forwarder {
    /// A forwarder for this gateway.
    pub fn new(forge: Forge, max_message: usize, transport: PeerTransport) -> Arc<Self> {
        Arc::new(Self {
            forge,
            max_message,
            transport,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The (lazily connected, reused) channel to the gateway at `address`.
    fn channel(&self, address: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let bad = |e: &dyn std::fmt::Display| {
            tonic::Status::internal(format!("peer address {address:?}: {e}"))
        };
        let endpoint = match &self.transport {
            PeerTransport::Plain => {
                Endpoint::from_shared(format!("http://{address}")).map_err(|e| bad(&e))?
            }
            PeerTransport::Tls(tls) => Endpoint::from_shared(format!("https://{address}"))
                .and_then(|e| e.tls_config(tls.clone()))
                .map_err(|e| bad(&e))?,
            PeerTransport::Untrusted => {
                return Err(tonic::Status::unavailable(
                    "this gateway serves TLS and trusts no CA for the other gateways' \
                     certificates, so it does not forward calls to them: set --tls-peer-ca \
                     (or --tls-client-ca), or call the database's gateway directly",
                ));
            }
        };
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Where a new database goes: another gateway's node name, or `None` for this one.
    fn place(&self, c: &Create) -> Result<Option<String>, tonic::Status> {
        let sqlite = matches!(
            pb::Backend::try_from(c.backend),
            Ok(pb::Backend::Unspecified | pb::Backend::Sqlite)
        );
        let catalog = self.forge.catalog();
        let me = catalog.node();
        if !sqlite {
            return Ok(None);
        }
        let nodes = self.forge.leadership().nodes();
        if !c.node.is_empty() {
            if c.node == me {
                return Ok(None);
            }
            if !nodes.iter().any(|n| n.name == c.node) {
                let live: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(tonic::Status::unavailable(format!(
                    "no live gateway is named {:?} (live: {}): the database was not created",
                    c.node,
                    live.join(", ")
                )));
            }
            return Ok(Some(c.node.clone()));
        }
        Ok(placement(&nodes, me)
            .filter(|n| n.name != me)
            .map(|n| n.name.clone()))
    }
}

/// Where to send a call on `database`, owned by `owner`: its live address (see the module docs).
fn owner_address(forge: &Forge, database: &str, owner: &str) -> Result<String, tonic::Status> {
    let nodes = forge.leadership().nodes();
    match nodes.iter().find(|n| n.name == owner) {
        Some(n) => Ok(n.address.clone()),
        None => Err(tonic::Status::unavailable(format!(
            "database {database:?} is a SQLite database on gateway {owner:?}, which is \
             down (no heartbeat within the last lease): it is served again when that \
             gateway is back"
        ))),
    }
}

/// Relays an interactive session whose `begin` (the message `begin`, after none that opened a
/// transaction here) names `owner`'s SQLite database: `begin` and every later message of
/// `inbound` go to the owner's Session, with the caller's `authorization` and
/// [`FORWARDED_BY`], and its answers come back on `tx` as they arrive. The owner audits and
/// runs the session and applies its idle timeout; either side ending ends the other.
pub async fn relay_session(
    fwd: &Forwarder,
    metadata: &tonic::metadata::MetadataMap,
    owner: &str,
    begin: pb::SessionRequest,
    mut inbound: tonic::Streaming<pb::SessionRequest>,
    tx: tokio::sync::mpsc::Sender<Result<pb::SessionResponse, tonic::Status>>,
) {
    let forge = &fwd.forge;
    let database = match &begin.kind {
        Some(pb::session_request::Kind::Begin(b)) => b.database.clone(),
        _ => String::new(),
    };
    if let Some(from) = metadata.get(FORWARDED_BY) {
        let _ = tx
            .send(Err(tonic::Status::unavailable(format!(
                "database {database:?} was forwarded here by gateway {from:?}, but its file is \
                 on gateway {owner:?}: the gateways' views of the catalog disagree for a \
                 moment; retry"
            ))))
            .await;
        return;
    }
    let reached = owner_address(forge, &database, owner)
        .and_then(|address| Ok((fwd.channel(&address)?, address)));
    let (channel, address) = match reached {
        Ok(found) => found,
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    let (out, out_rx) = tokio::sync::mpsc::channel(4);
    let _ = out.send(begin).await;
    let pump = tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            if out.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(out_rx));
    if let Some(auth) = metadata.get("authorization") {
        request.metadata_mut().insert("authorization", auth.clone());
    }
    if let Ok(me) = forge.catalog().node().parse() {
        request.metadata_mut().insert(FORWARDED_BY, me);
    }
    let max = forge.limits().max_message_bytes;
    // The generated client is not built into the server (build.rs builds servers only): the
    // call it would make, on tonic's generic client.
    let mut client = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    debug!(db = database, %owner, %address, "relaying a session to the database's gateway");
    let answered = match client.ready().await {
        Ok(()) => {
            let codec =
                tonic_prost::ProstCodec::<pb::SessionRequest, pb::SessionResponse>::default();
            let path = http::uri::PathAndQuery::from_static("/dbforge.v1.QueryService/Session");
            client.streaming(request, path, codec).await
        }
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    match answered {
        Ok(answers) => {
            let mut answers = answers.into_inner();
            loop {
                let next = match answers.message().await {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => break,
                    Err(status) => Err(status),
                };
                let end = next.is_err();
                if tx.send(next).await.is_err() || end {
                    break;
                }
            }
        }
        Err(status) => {
            let _ = tx
                .send(Err(tonic::Status::unavailable(format!(
                    "database {database:?} is a SQLite database on gateway {owner:?} at \
                     {address}, which cannot be reached: {}",
                    status.message()
                ))))
                .await;
        }
    }
    pump.abort();
}

/// An error with its causes, `a: b: c` (tonic's transport errors say only "transport error").
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn status_response(status: tonic::Status) -> Response {
    status.into_http::<Body>()
}

/// Reads the first gRPC frame of `body`: the bytes read so far, and the rest of the body
/// (`None` when it ended). Stops early (handing back what it read) at a compressed frame or one
/// larger than `max`.
async fn first_frame(mut body: Body, max: usize) -> (BytesMut, Option<Body>, Option<usize>) {
    let mut head = BytesMut::new();
    loop {
        if head.len() >= 5 {
            let compressed = head[0] != 0;
            let len = (&head[1..5]).get_u32() as usize;
            if compressed || len > max {
                return (head, Some(body), None);
            }
            if head.len() >= 5 + len {
                return (head, Some(body), Some(len));
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
            }
            // An error or the end: whoever reads the request next sees what is left.
            Some(Err(_)) | None => return (head, None, None),
        }
    }
}

/// Reads the rest of a request that carries one message (every named call but the imports):
/// nothing but the end should follow the first frame. Forwarding it as one complete body lets
/// the owner's answer end the HTTP/2 stream cleanly; a request body still open when the answer
/// ends is reset, and a server counts resets against the connection.
async fn read_to_end(mut head: BytesMut, mut rest: Body, max: usize) -> (BytesMut, Option<Body>) {
    loop {
        match rest.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    head.extend_from_slice(&data);
                }
                if head.len() > max {
                    // Not a one-message request after all: whoever reads it next says so.
                    return (head, Some(rest));
                }
            }
            Some(Err(_)) | None => return (head, None),
        }
    }
}

/// Puts `head` back in front of `rest`.
fn rejoin(head: BytesMut, rest: Option<Body>) -> Body {
    let head = futures::stream::once(async move { Ok::<_, axum::Error>(head.freeze()) });
    match rest {
        Some(rest) => Body::from_stream(head.chain(rest.into_data_stream())),
        None => Body::from_stream(head),
    }
}

/// The middleware: forwards calls on other gateways' SQLite databases, passes on the rest.
pub async fn forward(
    axum::extract::State(fwd): axum::extract::State<Arc<Forwarder>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(named) = named(req.uri().path()) else {
        return next.run(req).await;
    };
    // One gateway (or none of the others' SQLite databases and nobody to place one on):
    // nothing can be forwarded, so the first message is not read here.
    if fwd.forge.leadership().replicas() <= 1 && !fwd.forge.registry().has_remote() {
        return next.run(req).await;
    }
    let create = req.uri().path() == "/dbforge.v1.DatabaseService/CreateDatabase";
    let (mut parts, body) = req.into_parts();
    let (head, rest, len) = first_frame(body, fwd.max_message).await;
    let message = len.map(|len| &head[5..5 + len]);
    let database = message.and_then(|m| database_of(named, m));
    let mut owner = database
        .as_deref()
        .and_then(|db| Some((db.to_owned(), fwd.forge.registry().remote_owner(db)?)));
    if create && owner.is_none() && !parts.headers.contains_key(FORWARDED_BY) {
        // Not decodable here: the service answers with its own error.
        if let Some(Ok(c)) = message.map(Create::decode) {
            match fwd.place(&c) {
                Ok(Some(node)) => owner = Some((c.name, node)),
                Ok(None) => {}
                Err(status) => return status_response(status),
            }
        }
    }
    let Some((database, owner)) = owner else {
        let body = rejoin(head, rest);
        return next.run(Request::from_parts(parts, body)).await;
    };
    let (head, rest) = match (named, rest) {
        (Named::Top, Some(rest)) => read_to_end(head, rest, fwd.max_message + 5).await,
        (_, rest) => (head, rest),
    };
    let body = match rest {
        None => Body::from(head.freeze()),
        rest => rejoin(head, rest),
    };
    let database = database.as_str();
    if let Some(from) = parts.headers.get(FORWARDED_BY) {
        return status_response(tonic::Status::unavailable(format!(
            "database {database:?} was forwarded here by gateway {from:?}, but its file is on \
             gateway {owner:?}: the gateways' views of the catalog disagree for a moment; retry"
        )));
    }
    let address = match owner_address(&fwd.forge, database, &owner) {
        Ok(a) => a,
        Err(status) => return status_response(status),
    };
    let channel = match fwd.channel(&address) {
        Ok(c) => c,
        Err(status) => return status_response(status),
    };
    parts.version = http::Version::HTTP_2;
    parts.headers.remove(http::header::HOST);
    let me = fwd.forge.catalog().node().to_owned();
    if let Ok(v) = http::HeaderValue::from_str(&me) {
        parts.headers.insert(FORWARDED_BY, v);
    }
    debug!(db = database, %owner, %address, path = %parts.uri.path(), "forwarding a call to the database's gateway");
    let req = http::Request::from_parts(parts, tonic::body::Body::new(body));
    match channel.oneshot(req).await {
        Ok(res) => res.map(Body::new),
        Err(e) => status_response(tonic::Status::unavailable(format!(
            "database {database:?} is a SQLite database on gateway {owner:?} at {address}, \
             which cannot be reached: {}",
            causes(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::{FileDescriptorSet, field_descriptor_proto::Type};

    use super::*;

    /// Every path `named` knows is a method of the API whose request has, in field 1 (or field
    /// 1 of field 1), a string naming a database; and every such method is known.
    #[test]
    fn the_table_of_named_calls_matches_the_protos() {
        let set = FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).expect("descriptors");
        let messages: HashMap<String, &prost_types::DescriptorProto> = set
            .file
            .iter()
            .flat_map(|f| {
                f.message_type
                    .iter()
                    .map(move |m| (format!(".{}.{}", f.package(), m.name()), m))
            })
            .collect();
        let field1 =
            |m: &prost_types::DescriptorProto| m.field.iter().find(|f| f.number() == 1).cloned();
        let naming = ["database", "name", "source"];
        let mut checked = 0;
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    let input = messages[method.input_type()];
                    let Some(named) = named(&path) else {
                        // A call naming a database in field 1 must be forwarded, or be one of
                        // those that only read the catalog (or start from a backup).
                        let first = field1(input).map(|f| f.name().to_owned());
                        assert!(
                            first.as_deref() != Some("database")
                                || ["ListBackups", "MaterializeGraph"].contains(&method.name()),
                            "{path} names a database in field 1 but is not forwarded"
                        );
                        continue;
                    };
                    let f = field1(input).unwrap_or_else(|| panic!("{path}: no field 1"));
                    let f = match named {
                        Named::Top => f,
                        Named::Nested => {
                            assert_eq!(f.r#type(), Type::Message, "{path}: field 1 wraps");
                            field1(messages[f.type_name()])
                                .unwrap_or_else(|| panic!("{path}: no nested field 1"))
                        }
                    };
                    assert_eq!(f.r#type(), Type::String, "{path}: field 1 is a string");
                    assert!(
                        naming.contains(&f.name()),
                        "{path}: field 1 is {}",
                        f.name()
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 26, "every named call was found in the protos");
    }

    #[test]
    fn the_database_is_read_from_the_first_message() {
        let exec = crate::pb::ExecuteRequest {
            database: "app".into(),
            sql: "SELECT 1".into(),
            ..Default::default()
        };
        assert_eq!(
            database_of(Named::Top, &exec.encode_to_vec()).as_deref(),
            Some("app")
        );
        let import = crate::pb::ImportCsvRequest {
            message: Some(crate::pb::import_csv_request::Message::Header(
                crate::pb::ImportCsvHeader {
                    database: "app".into(),
                    ..Default::default()
                },
            )),
        };
        assert_eq!(
            database_of(Named::Nested, &import.encode_to_vec()).as_deref(),
            Some("app")
        );
        assert_eq!(database_of(Named::Top, b"\xff\xff"), None, "garbage");
        assert_eq!(
            database_of(Named::Top, &[]),
            None,
            "an empty message names no database"
        );
    }
}
