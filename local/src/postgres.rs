//! A PostgreSQL of `herald-local`'s own, for a machine where none runs: with no
//! `DATABASE_URL` and nothing on 127.0.0.1:5432, a cluster is made from the machine's
//! PostgreSQL binaries in the user's state directory, started, and reused by later runs.
//!
//! The cluster listens on 127.0.0.1 only (no Unix socket: its default directory is often not
//! writable by users), trusts those connections, and has the superuser `postgres`. Its port
//! lives in its own `postgresql.conf`, so that a plain `pg_ctl start` also uses it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// The port probed for a running server when `HERALD_DEFAULT_DATABASE_PORT` is not set.
pub const DEFAULT_PORT: u16 = 5432;

/// The first port tried for a new private cluster: beside the usual one.
const FIRST_PRIVATE_PORT: u16 = 5433;

/// What a machine without PostgreSQL's binaries is told.
pub const NO_BINARIES: &str = "no PostgreSQL binaries (initdb, pg_ctl) on PATH, from \
    `pg_config --bindir` or under /usr/lib/postgresql: install them (`apt-get install \
    postgresql`, `brew install postgresql@15`), or set DATABASE_URL";

/// The owner's connection for a command: `given` (`--database-url`, `DATABASE_URL`), else
/// the server on the default port if it answers, else the private cluster, started if needed.
pub async fn database_url(given: Option<String>) -> anyhow::Result<String> {
    if let Some(url) = given {
        return Ok(url);
    }
    let probed = default_port()?;
    if answers(probed).await {
        return Ok(url(probed));
    }
    let cluster = Private::new(state_dir(|name| std::env::var_os(name))?.join("postgres"))?;
    let (port, how) = cluster.ensure_running(probed).await?;
    eprintln!(
        "herald-local: nothing on 127.0.0.1:{probed}, so using its own PostgreSQL ({how}) in \
         {} on 127.0.0.1:{port}; stop it with: {}",
        cluster.dir.display(),
        cluster.stop_hint()
    );
    Ok(url(port))
}

fn url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/herald")
}

/// `HERALD_DEFAULT_DATABASE_PORT` (tests point it where nothing listens), else 5432.
fn default_port() -> anyhow::Result<u16> {
    match std::env::var("HERALD_DEFAULT_DATABASE_PORT") {
        Ok(port) => port
            .parse()
            .context("HERALD_DEFAULT_DATABASE_PORT is not a port"),
        Err(_) => Ok(DEFAULT_PORT),
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` within a second.
async fn answers(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

/// `HERALD_STATE_DIR`, else `$XDG_STATE_HOME/herald`, else `~/.local/state/herald`.
/// `var` reads the environment (a parameter so the tests need not change theirs).
pub fn state_dir(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |name| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("HERALD_STATE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = set("XDG_STATE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("herald"));
    }
    match set("HOME") {
        Some(home) => Ok(home.join(".local/state/herald")),
        None => bail!("no HOME to keep a PostgreSQL cluster under: set HERALD_STATE_DIR"),
    }
}

/// A private cluster: its data directory and the directory of the binaries that run it.
pub struct Private {
    pub dir: PathBuf,
    bin: PathBuf,
}

impl Private {
    /// The cluster in `dir` (which may not exist yet), run by the machine's binaries.
    pub fn new(dir: PathBuf) -> anyhow::Result<Private> {
        Ok(Private {
            dir,
            bin: bindir()?,
        })
    }

    /// Initialises the cluster if its directory holds none and starts it if it is not
    /// running; returns its port and which of those it did.
    async fn ensure_running(&self, avoid: u16) -> anyhow::Result<(u16, &'static str)> {
        let mut how = "already running";
        if !self.dir.join("PG_VERSION").exists() {
            self.init(free_port(avoid)?).await?;
            how = "created";
        }
        if !self.running().await? {
            self.start().await?;
            if how != "created" {
                how = "started";
            }
        }
        Ok((self.port()?, how))
    }

    /// `initdb`, then the settings every start uses. As root the directory is the
    /// `postgres` user's, who runs the server (PostgreSQL refuses to run as root).
    async fn init(&self, port: u16) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        if as_root() {
            let mut chown = std::process::Command::new("chown");
            chown.arg("postgres:").arg(&self.dir);
            run(chown, "chown").await?;
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.dir);
        initdb.args(["-U", "postgres", "-E", "UTF8", "-A", "trust"]);
        run(initdb, "initdb").await.with_context(|| {
            let who = if as_root() {
                "the postgres user (this is root)"
            } else {
                "this user"
            };
            format!(
                "no PostgreSQL cluster made in {}: {who} must be able to reach it; set \
                 HERALD_STATE_DIR to another directory (e.g. /var/lib/herald)",
                self.dir.display()
            )
        })?;
        let settings = format!(
            "\n# herald-local's private cluster\nport = {port}\n\
             listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
        );
        let conf = self.dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).context("initdb's postgresql.conf")?;
        text.push_str(&settings);
        std::fs::write(&conf, text).context("writing postgresql.conf")
    }

    /// `pg_ctl status`: 0 when a server runs on the directory.
    async fn running(&self) -> anyhow::Result<bool> {
        let mut status = self.command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.dir);
        let status = tokio::process::Command::from(status).output().await;
        Ok(status.context("pg_ctl status")?.status.success())
    }

    /// Starts the server and waits until it accepts connections; its log is in the directory.
    async fn start(&self) -> anyhow::Result<()> {
        let mut start = self.command("pg_ctl");
        start.arg("start").arg("-w").arg("-t").arg("60");
        start.arg("-D").arg(&self.dir);
        start.arg("-l").arg(self.dir.join("server.log"));
        run(start, "pg_ctl start")
            .await
            .with_context(|| format!("see {}", self.dir.join("server.log").display()))
    }

    /// The port `init` wrote into `postgresql.conf` (the last setting wins, as in PostgreSQL).
    fn port(&self) -> anyhow::Result<u16> {
        let conf = std::fs::read_to_string(self.dir.join("postgresql.conf"))
            .context("the cluster's postgresql.conf")?;
        conf_port(&conf).context("no port in the cluster's postgresql.conf")
    }

    /// `program` from the cluster's binaries (see [`pg_command`]).
    pub fn command(&self, program: &str) -> std::process::Command {
        pg_command(&self.bin, program)
    }

    /// The command line that stops the cluster.
    fn stop_hint(&self) -> String {
        let runuser = if as_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let pg_ctl = self.bin.join("pg_ctl");
        format!(
            "{runuser}{} -D {} stop",
            pg_ctl.display(),
            self.dir.display()
        )
    }
}

/// Runs `command`; its failure carries what it wrote to stderr.
async fn run(command: std::process::Command, what: &str) -> anyhow::Result<()> {
    let out = tokio::process::Command::from(command)
        .output()
        .await
        .with_context(|| format!("{what} did not run"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what} failed ({}): {}", out.status, stderr.trim());
    }
    Ok(())
}

fn conf_port(conf: &str) -> Option<u16> {
    conf.lines()
        .rev()
        .filter_map(|line| line.trim().strip_prefix("port")?.trim().strip_prefix('='))
        .find_map(|value| value.split('#').next()?.trim().parse().ok())
}

/// The first port from 5433 up that nothing on 127.0.0.1 holds, other than `avoid` (the
/// probed one, which a server may take later).
fn free_port(avoid: u16) -> anyhow::Result<u16> {
    (FIRST_PRIVATE_PORT..=u16::MAX)
        .filter(|&port| port != avoid)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .context("no free port for PostgreSQL on 127.0.0.1")
}

/// `program` from PostgreSQL's binaries in `bin`, as the `postgres` user when this process
/// is root (PostgreSQL refuses to run as root), from `/` (root's working directory may be
/// unreadable to `postgres`) and with no input.
pub fn pg_command(bin: &Path, program: &str) -> std::process::Command {
    let program = bin.join(program);
    let mut command = if as_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    command.current_dir("/");
    command.stdin(std::process::Stdio::null());
    command
}

/// The machine's PostgreSQL binaries: `PG_BINDIR`, else as [`find_bindir`] finds them.
pub fn bindir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        return Ok(dir.into());
    }
    find_bindir(std::env::var_os("PATH"), Path::new("/usr/lib/postgresql"))
}

pub fn as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The directory holding `initdb` and `pg_ctl`: on `path`, else `pg_config --bindir`'s (for
/// a `pg_config` on `path`), else the newest of Debian's `<debian>/<version>/bin`.
fn find_bindir(path: Option<OsString>, debian: &Path) -> anyhow::Result<PathBuf> {
    let dirs: Vec<PathBuf> = path.iter().flat_map(std::env::split_paths).collect();
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = dirs.iter().find(|d| has_both(d)) {
        return Ok(dir.clone());
    }
    let pg_config = dirs
        .iter()
        .map(|d| d.join("pg_config"))
        .find(|p| p.is_file());
    if let Some(out) =
        pg_config.and_then(|p| std::process::Command::new(p).arg("--bindir").output().ok())
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_both(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(NO_BINARIES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_anywhere_says_how_to_install_them() {
        let empty = std::env::temp_dir().join(format!("herald-no-pg-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let error = find_bindir(Some(empty.clone().into()), &empty.join("lib")).unwrap_err();
        assert_eq!(error.to_string(), NO_BINARIES);
        assert!(NO_BINARIES.contains("apt-get install postgresql"));
        let error = find_bindir(None, Path::new("/nonexistent")).unwrap_err();
        assert_eq!(error.to_string(), NO_BINARIES);
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn binaries_are_found_on_path_then_under_debian_newest_first() {
        let root = std::env::temp_dir().join(format!("herald-fake-pg-{}", std::process::id()));
        for dir in ["path", "debian/9/bin", "debian/15/bin", "debian/13/bin"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for program in ["initdb", "pg_ctl"] {
                std::fs::write(root.join(dir).join(program), "").unwrap();
            }
        }
        let path = std::env::join_paths([root.join("empty"), root.join("path")]).unwrap();
        let found = find_bindir(Some(path), &root.join("debian")).unwrap();
        assert_eq!(found, root.join("path"));
        let found = find_bindir(None, &root.join("debian")).unwrap();
        assert_eq!(found, root.join("debian/15/bin"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_default_port_is_the_default_url() {
        assert_eq!(url(DEFAULT_PORT), crate::DEFAULT_DATABASE_URL);
    }

    #[test]
    fn the_port_is_the_last_one_set() {
        let conf = "#port = 5432\t\t# comment\nport = 5433\nport = 5440 # herald\n";
        assert_eq!(conf_port(conf), Some(5440));
        assert_eq!(conf_port("#port = 5432\n"), None);
    }

    #[test]
    fn the_state_directory_follows_xdg() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |name: &str| {
                let value = pairs.iter().find(|(n, _)| *n == name)?.1;
                Some(OsString::from(value))
            }
        };
        let dir = |pairs| state_dir(env(pairs)).unwrap();
        assert_eq!(dir(&[("HOME", "/h")]), Path::new("/h/.local/state/herald"));
        let xdg = &[("HOME", "/h"), ("XDG_STATE_HOME", "/x")];
        assert_eq!(dir(xdg), Path::new("/x/herald"));
        let own = &[("XDG_STATE_HOME", "/x"), ("HERALD_STATE_DIR", "/s")];
        assert_eq!(dir(own), Path::new("/s"));
        assert!(state_dir(|_| None).is_err());
    }
}
