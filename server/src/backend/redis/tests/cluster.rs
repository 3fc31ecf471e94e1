//! The Redis backend on a Redis Cluster that the test starts itself: six `redis-server`
//! processes on loopback ports (three primaries, each with a replica), joined by
//! `redis-cli --cluster create`. The standalone suite's cases run on it unchanged (through the
//! `CLUSTER` task-local, which points `url()` and the tests' own connections at the cluster),
//! then the cluster's own promises: one slot per database, ACL users on every node, and calls
//! that come back after the primary holding a database (and the gateway's URL) is killed.
//!
//! Without `redis-server` and `redis-cli` it skips with a notice, or fails under
//! `DBFORGE_REQUIRE_BACKENDS=1`.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
};

use super::*;
use crate::backend::redis::cluster::{Topology, slot_of};

/// The cluster's processes, killed on drop.
struct TestCluster {
    _dir: tempfile::TempDir,
    nodes: Vec<(u16, Child)>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port whose cluster bus port (`+ 10000`) is also free.
fn free_port_pair(taken: &[u16]) -> u16 {
    loop {
        let Ok(l) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let port = l.local_addr().expect("addr").port();
        if port > 55_000 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn connect(port: u16) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_multiplexed_async_connection()
        .await
}

impl TestCluster {
    /// Starts six nodes and joins them, or returns `None` (after the notice) without the tools.
    async fn start() -> Option<Self> {
        if !tool("redis-server") || !tool("redis-cli") {
            conformance::unreachable(
                "redis cluster",
                "redis-server and redis-cli are needed to start a cluster",
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let taken: Vec<u16> = nodes.iter().map(|(p, _)| *p).collect();
            let port = free_port_pair(&taken);
            nodes.push((port, Self::spawn(dir.path(), port)));
        }
        let cluster = Self { _dir: dir, nodes };
        for (port, _) in &cluster.nodes {
            Self::wait(|| async { connect(*port).await.is_ok() }, "a node to start").await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &cluster.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Ready when every node says ok and every primary has its replica in the slot map.
        let ports: Vec<u16> = cluster.nodes.iter().map(|(p, _)| *p).collect();
        Self::wait(
            || {
                let ports = ports.clone();
                async move {
                    for &port in &ports {
                        let Ok(mut c) = connect(port).await else {
                            return false;
                        };
                        let info: String = redis::cmd("CLUSTER")
                            .arg("INFO")
                            .query_async(&mut c)
                            .await
                            .unwrap_or_default();
                        if !info.contains("cluster_state:ok") {
                            return false;
                        }
                    }
                    let slots = raw(&mut connect(ports[0]).await.expect("node"), &["CLUSTER", "SLOTS"])
                        .await
                        .expect("slots");
                    matches!(&slots, redis::Value::Array(shards)
                        if shards.len() == 3
                            && shards.iter().all(|s| matches!(s, redis::Value::Array(p) if p.len() >= 4)))
                }
            },
            "the cluster to form",
        )
        .await;
        Some(cluster)
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{port}.conf")))
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join(format!("{port}.log")))
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server")
    }

    async fn wait<F, Fut>(mut ready: F, what: &str)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !ready().await {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(p, _)| *p).collect()
    }

    fn kill(&mut self, port: u16) {
        let (_, child) = self
            .nodes
            .iter_mut()
            .find(|(p, _)| *p == port)
            .expect("a node of the cluster");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
}

/// The slot map as one node sees it.
async fn topology(port: u16) -> Topology {
    let slots = raw(
        &mut connect(port).await.expect("node"),
        &["CLUSTER", "SLOTS"],
    )
    .await
    .expect("CLUSTER SLOTS");
    Topology::parse(&slots, "127.0.0.1").expect("slot map")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_on_a_redis_cluster_and_survives_a_failover() {
    let Some(mut cluster) = TestCluster::start().await else {
        return;
    };
    let seed = cluster.ports()[0];
    let seed_url = format!("redis://127.0.0.1:{seed}");
    let backend = CLUSTER
        .scope(seed_url.clone(), async {
            let backend = backend().await.expect("the cluster answers");
            assert!(backend.shared.pool.is_cluster(), "found out from the node");
            conformance::run_all(backend.clone(), &no_sql_hooks()).await;
            keys_are_mapped_into_the_namespace_on(&backend).await;
            databases_are_isolated_on(&backend).await;
            refused_commands_are_forbidden_on(&backend).await;
            command_lines_are_split_with_quotes_on(&backend).await;
            pipelines_and_transactions_on(&backend).await;
            scan_streams_page_by_page_on(&backend).await;
            destroy_removes_keys_and_user_on(&backend).await;
            dump_and_import_round_trip_every_type_on(&backend).await;
            bad_import_lines_are_named_and_nothing_is_written_on(&backend).await;
            key_space_summary_groups_patterns_on(&backend).await;
            the_read_only_user_reads_its_own_keys_only_on(&backend).await;
            backend
        })
        .await;

    // One slot per database, and its users on all six nodes.
    let db = CLUSTER
        .scope(seed_url.clone(), async {
            // A database on the URL's node, so the failover below also takes the gateway's
            // administrative connection away.
            let mut spare = Vec::new();
            let db = loop {
                let db = Db::new(&backend, "failover").await;
                if node_url(&db.ns).await == seed_url {
                    break db;
                }
                spare.push(db);
                assert!(spare.len() < 40, "no database landed on the URL's node");
            };
            for other in spare {
                other.drop_now().await;
            }
            db
        })
        .await;
    db.ok("MSET a 1 b 2 c 3").await;
    db.ok("RPUSH list x y z").await;
    assert_eq!(
        db.ok("MGET a b c").await.rows,
        vec![vec![text("1")], vec![text("2")], vec![text("3")]],
        "multi-key commands work: every key is in one slot"
    );
    let slot = slot_of(db.ns.prefix.as_bytes());
    let keys_in_slot: i64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut connect(seed).await.expect("seed"))
        .await
        .expect("count");
    assert_eq!(keys_in_slot, 4);
    for port in cluster.ports() {
        let mut c = connect(port).await.expect("node");
        for user in [db.ns.user.clone(), db.ns.reader().user] {
            let found = raw(&mut c, &["ACL", "GETUSER", &user])
                .await
                .expect("getuser");
            assert_ne!(found, redis::Value::Nil, "{user} on node {port}");
        }
    }

    // The replica has the writes (replication is asynchronous; a failover without this could
    // lose the last ones, which is Redis' contract, not ours).
    let shard = topology(seed).await;
    let replica = {
        let t = topology(cluster.ports()[1]).await;
        let replicas = t.replicas_of(slot);
        assert_eq!(replicas.len(), 1, "{t:?}");
        replicas[0].port
    };
    assert_eq!(shard.primary_of(slot).map(|n| n.port), Some(seed));
    let key = format!("{}c", db.ns.prefix);
    TestCluster::wait(
        || {
            let key = key.clone();
            async move {
                let Ok(mut c) = connect(replica).await else {
                    return false;
                };
                let _ = raw(&mut c, &["READONLY"]).await;
                matches!(raw(&mut c, &["GET", &key]).await, Ok(redis::Value::BulkString(v)) if v == b"3")
            }
        },
        "the replica to catch up",
    )
    .await;

    // kill -9 the primary of the database's slot, which is also the URL's node.
    cluster.kill(seed);
    let killed = Instant::now();
    let (mut refused, mut back) = (0, None);
    while back.is_none() {
        match db.run("GET c").await {
            Ok(r) => back = Some(r),
            Err(Error::Unavailable(_)) => refused += 1,
            Err(e) => panic!("during the failover: {e:?}"),
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "failover: calls back after {:?} ({refused} refused with UNAVAILABLE)",
        killed.elapsed()
    );
    assert_eq!(back.expect("answered").rows, vec![vec![text("3")]]);
    let promoted = topology(replica).await;
    assert_eq!(promoted.primary_of(slot).map(|n| n.port), Some(replica));
    assert_eq!(
        db.ok("LRANGE list 0 -1").await.rows.len(),
        3,
        "nothing lost"
    );
    db.ok("SET after failover").await;
    assert_eq!(db.value("GET after").await, text("failover"));
    let r = db
        .db
        .batch(
            vec![Statement::new("INCR n"), Statement::new("INCR n")],
            true,
            &limits(),
        )
        .await
        .expect("MULTI/EXEC on the new primary");
    assert_eq!(r[1].rows, vec![vec![Value::Int(2)]]);

    // Spawning and pruning keep working without the lost node.
    let survivor = format!("redis://127.0.0.1:{replica}");
    CLUSTER
        .scope(survivor, async {
            let fresh = Db::new(&backend, "after").await;
            fresh.ok("SET k v").await;
            assert_eq!(fresh.value("GET k").await, text("v"));
            let (ns, mut admin) = (fresh.ns.clone(), admin_for(&fresh.ns).await);
            fresh.drop_now().await;
            assert_eq!(leftovers(&mut admin, &ns).await, (0, false));
            let (ns, mut admin) = (db.ns.clone(), admin_for(&db.ns).await);
            db.drop_now().await;
            assert_eq!(leftovers(&mut admin, &ns).await, (0, false));
        })
        .await;
}
