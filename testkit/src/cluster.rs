//! A replicated, sharded ClickHouse 18.16 cluster on one machine, for the
//! collector's cluster-mode tests: a standalone ZooKeeper (Debian's
//! `zookeeper` package, run with `java` without systemd) and
//! `shards x replicas` private servers, each with the `shard` and
//! `replica` macros and a `<remote_servers>` entry naming all of them
//! (`internal_replication`: the replicated tables copy between replicas).
//! The recipe is the one in `../shared/CLICKHOUSE.md`.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, io, ClickHouseServer, Error, Result, DEV_CONFIG_XML};

/// Debian's ZooKeeper jar.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// Whether a cluster can be started: `clickhouse-server`, `java` and
/// ZooKeeper's jar.
pub fn cluster_available() -> bool {
    crate::find_binary().is_some()
        && Path::new(ZOOKEEPER_JAR).exists()
        && Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// A standalone ZooKeeper on 127.0.0.1, stopped (SIGKILL) when dropped.
pub struct ZooKeeper {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl ZooKeeper {
    /// Starts it with its data in `dir` and waits until it answers `ruok`.
    pub fn start_in(dir: &Path, port: u16) -> Result<ZooKeeper> {
        std::fs::create_dir_all(dir.join("data")).map_err(io("create zookeeper dir"))?;
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=ruok,stat\nmaxSessionTimeout=60000\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).map_err(io("write zoo.cfg"))?;
        std::fs::write(
            dir.join("log4j.properties"),
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n\
             log4j.appender.F.File=zookeeper.log\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.F.layout.ConversionPattern=%d %p %m%n\n",
        )
        .map_err(io("write log4j.properties"))?;
        let mut zk = ZooKeeper {
            child: None,
            dir: dir.to_path_buf(),
            port,
        };
        zk.spawn()?;
        Ok(zk)
    }

    fn spawn(&mut self) -> Result<()> {
        let cp = format!(
            "{}:{ZOOKEEPER_JAR}:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar",
            self.dir.display()
        );
        let child = Command::new("java")
            .current_dir(&self.dir)
            .args(["-Xms64m", "-Xmx256m", "-cp", &cp])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("spawn java (zookeeper)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.ruok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Io {
            what: "zookeeper did not answer ruok within 30 s".into(),
            source: std::io::Error::other("timeout"),
        })
    }

    /// Whether it answers `ruok` with `imok`.
    pub fn ruok(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"ruok").is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out == "imok"
    }

    /// Its client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again over the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ports of one node.
#[derive(Debug, Clone, Copy)]
struct NodePorts {
    http: u16,
    tcp: u16,
    interserver: u16,
}

/// A running cluster: ZooKeeper and the servers, shard-major
/// (`nodes[shard * replicas + replica]`). Dropping it stops everything.
pub struct Cluster {
    /// The servers (their HTTP URLs are the collectors' `clickhouse.url`).
    pub nodes: Vec<ClickHouseServer>,
    /// ZooKeeper (dropped after the servers).
    pub zookeeper: ZooKeeper,
    /// The cluster's name in `<remote_servers>`.
    pub name: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts ZooKeeper and `shards * replicas` servers, cluster `name`.
    pub fn start(name: &str, shards: usize, replicas: usize) -> Result<Cluster> {
        Self::start_with(name, shards, replicas, |_| true)
    }

    /// [`Cluster::start`], but only the nodes for which `macros(index)`
    /// (shard-major, as in `nodes`) is true get the `shard` and `replica`
    /// macros: a misconfigured cluster for tests of the collector's checks.
    pub fn start_with(
        name: &str,
        shards: usize,
        replicas: usize,
        macros: impl Fn(usize) -> bool,
    ) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("shaobing-cluster-")
            .tempdir()
            .map_err(io("create temp dir"))?;
        let zookeeper = ZooKeeper::start_in(&dir.path().join("zookeeper"), free_port()?)?;
        let mut ports = Vec::new();
        for _ in 0..shards * replicas {
            ports.push(NodePorts {
                http: free_port()?,
                tcp: free_port()?,
                interserver: free_port()?,
            });
        }
        let mut remote = format!("<remote_servers><{name}>");
        for s in 0..shards {
            remote.push_str("<shard><internal_replication>true</internal_replication>");
            for r in 0..replicas {
                let p = ports[s * replicas + r];
                remote.push_str(&format!(
                    "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                    p.tcp
                ));
            }
            remote.push_str("</shard>");
        }
        remote.push_str(&format!("</{name}></remote_servers>"));
        let mut nodes = Vec::new();
        for s in 0..shards {
            for r in 0..replicas {
                let p = ports[s * replicas + r];
                let node_macros = if macros(s * replicas + r) {
                    format!(
                        "<macros><shard>{:02}</shard><replica>s{}r{}</replica></macros>",
                        s + 1,
                        s + 1,
                        r + 1
                    )
                } else {
                    String::new()
                };
                let extra = format!(
                    "<tcp_port>{}</tcp_port><interserver_http_port>{}</interserver_http_port>\
                     <interserver_http_host>127.0.0.1</interserver_http_host>\
                     <zookeeper><node index=\"1\"><host>127.0.0.1</host><port>{}</port></node>\
                     <session_timeout_ms>30000</session_timeout_ms></zookeeper>\
                     {node_macros}{remote}\
                     <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
                    p.tcp,
                    p.interserver,
                    zookeeper.port(),
                );
                let config =
                    DEV_CONFIG_XML.replacen("</yandex>", &format!("{extra}\n</yandex>"), 1);
                let node_dir = dir.path().join(format!("s{}r{}", s + 1, r + 1));
                nodes.push(ClickHouseServer::start_with_config(
                    &node_dir, &config, p.http,
                )?);
            }
        }
        Ok(Cluster {
            nodes,
            zookeeper,
            name: name.to_string(),
            _dir: dir,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill_in_place();
        }
        self.zookeeper.stop();
    }
}
