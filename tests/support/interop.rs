//! A real authorization server for the interop tests: panva/oidc-provider, run by Node.js from
//! `tests/interop/provider.mjs`.
//!
//! [`AuthorizationServer::start`] installs the pinned npm packages on first use (`npm ci`, once per
//! test binary), spawns the provider on `127.0.0.1` with an ephemeral port, and waits for its
//! `READY` line with a deadline. The child is killed when the handle is dropped, whatever happened
//! in the test. Tokens come from the real `/token` endpoint over HTTP; key rotation is driven over
//! the child's stdin (`ROTATE`, `RETIRE`), each command answered by one line on its stdout.
//!
//! Node.js missing is a test failure with instructions, never a skipped test.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bearer_guard::KeySet;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

/// How long the provider may take to start (Node start-up, module loading, four key pairs).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `ROTATE` / `RETIRE` may take to be acknowledged.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Oldest Node.js line oidc-provider 9 runs on.
const MIN_NODE_MAJOR: u32 = 20;

const INSTALL_HINT: &str = "The interop tests run a real authorization server (oidc-provider) on \
Node.js >= 20 with npm. Install Node.js from https://nodejs.org/ (or your package manager, e.g. \
`apt-get install nodejs npm`, `brew install node`), make sure `node` and `npm` are on PATH (or set \
BEARER_GUARD_NODE / BEARER_GUARD_NPM to their paths), then run `cargo test --all-features` again.";

/// The clients registered at the provider: (client_id, client_secret).
pub const BILLING: (&str, &str) = ("billing", "billing-secret");
/// Allowed only `payments:read`.
pub const REPORTER: (&str, &str) = ("reporter", "reporter-secret");

/// Start-up options for one provider process.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// JWS algorithm of the access tokens: `RS256`, `PS256`, `ES256` or `EdDSA`.
    pub alg: &'static str,
    /// Access-token lifetime.
    pub ttl: Duration,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            alg: "RS256",
            ttl: Duration::from_secs(300),
        }
    }
}

/// What the provider announced in its `READY` line.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProviderInfo {
    /// The issuer identifier (`iss` of its tokens), `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// Its JWK Set URL.
    pub jwks_uri: String,
    /// Its token endpoint.
    pub token_endpoint: String,
    /// Its OpenID Connect discovery document URL.
    pub discovery: String,
    /// The resource indicator of the payments API, which becomes the tokens' `aud`.
    pub audience: String,
    /// Another API's resource indicator, for tokens with the wrong audience.
    pub other_audience: String,
    /// The access-token algorithm.
    pub alg: String,
    /// `kid` of the key access tokens are signed with now.
    pub kid: String,
    /// Every published `kid`.
    pub kids: Vec<String>,
}

/// The provider's answer to `ROTATE` / `RETIRE`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyChange {
    /// `kid` of the key access tokens are signed with from now on.
    pub kid: String,
    /// Every published `kid`.
    pub kids: Vec<String>,
}

/// The harness could not do what a test asked.
#[derive(Debug)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn harness_error(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// Requests the provider has served per endpoint, since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RequestCounts {
    /// `GET /jwks`.
    pub jwks: u64,
    /// Discovery documents (OpenID Connect and RFC 8414 well-known URLs).
    pub discovery: u64,
    /// `POST /token`.
    pub token: u64,
}

/// The token endpoint refused a request (an OAuth error response) or could not be reached.
#[derive(Debug)]
pub struct TokenRequestError {
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// The OAuth `error` code (`invalid_scope`, `invalid_client`, `invalid_target`, ...).
    pub error: Option<String>,
    /// Everything known, for the failure message.
    pub detail: String,
}

impl fmt::Display for TokenRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token request failed: {}", self.detail)
    }
}

impl std::error::Error for TokenRequestError {}

/// A running oidc-provider. Killed on drop.
pub struct AuthorizationServer {
    info: ProviderInfo,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<String>>,
    /// Copies the child's stderr into `stderr`; ends when the child closes it.
    stderr_task: Option<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
}

impl fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl AuthorizationServer {
    /// Install the npm packages if needed, start the provider, wait until it is ready.
    pub async fn start(options: ProviderOptions) -> Result<AuthorizationServer, HarnessError> {
        let toolchain = tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|err| harness_error(format!("installer thread failed: {err}")))??;

        let mut child = Command::new(&toolchain.node)
            .arg("provider.mjs")
            .arg("--alg")
            .arg(options.alg)
            .arg("--ttl")
            .arg(options.ttl.as_secs().max(1).to_string())
            .current_dir(interop_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                harness_error(format!(
                    "could not start {}: {err}\n{INSTALL_HINT}",
                    toolchain.node.display()
                ))
            })?;

        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| harness_error("provider stdout not captured"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_task = child.stderr.take().map(|mut pipe| {
            let sink = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(read @ 1..) = pipe.read(&mut buffer).await {
                    if let Ok(mut text) = sink.lock() {
                        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                    }
                }
            })
        });

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| harness_error(format!("HTTP client: {err}")))?;
        let mut server = AuthorizationServer {
            // Filled from the READY line below.
            info: ProviderInfo::default(),
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
            stderr,
            stderr_task,
            http,
        };
        server.info = server.wait_for("READY", READY_TIMEOUT).await?;
        Ok(server)
    }

    /// What the provider announced at start-up (issuer, endpoints, audience, keys).
    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.info.issuer
    }

    /// The JWK Set URL.
    pub fn jwks_uri(&self) -> &str {
        &self.info.jwks_uri
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> &str {
        &self.info.token_endpoint
    }

    /// The payments API's resource indicator (= `aud`).
    pub fn audience(&self) -> &str {
        &self.info.audience
    }

    /// A client-credentials grant at the real token endpoint (`client_secret_basic`), for one
    /// resource indicator. Returns the access token.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: &str,
    ) -> Result<String, TokenRequestError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope)
            .append_pair("resource", resource)
            .finish();
        let failed =
            |status: Option<u16>, error: Option<String>, detail: String| TokenRequestError {
                status,
                error,
                detail,
            };
        let response = self
            .http
            .post(&self.info.token_endpoint)
            .basic_auth(client_id, Some(secret))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|err| failed(None, None, format!("{err}")))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|err| failed(Some(status), None, format!("reading the body: {err}")))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            failed(
                Some(status),
                None,
                format!("HTTP {status}, not JSON: {text}"),
            )
        })?;
        if status != 200 {
            let error = json["error"].as_str().map(str::to_owned);
            return Err(failed(
                Some(status),
                error,
                format!("HTTP {status}: {text}"),
            ));
        }
        match (json["access_token"].as_str(), json["token_type"].as_str()) {
            (Some(token), Some("Bearer")) => Ok(token.to_owned()),
            _ => Err(failed(
                Some(status),
                None,
                format!("unexpected token response: {text}"),
            )),
        }
    }

    /// The provider's JWK Set document, fetched over HTTP now.
    pub async fn jwks_json(&self) -> Result<String, HarnessError> {
        let response = self
            .http
            .get(&self.info.jwks_uri)
            .send()
            .await
            .map_err(|err| harness_error(format!("GET {}: {err}", self.info.jwks_uri)))?;
        if !response.status().is_success() {
            return Err(harness_error(format!(
                "GET {}: HTTP {}",
                self.info.jwks_uri,
                response.status()
            )));
        }
        response
            .text()
            .await
            .map_err(|err| harness_error(format!("GET {}: {err}", self.info.jwks_uri)))
    }

    /// The provider's current JWKS, loaded as a static [`KeySet`].
    pub async fn key_set(&self) -> Result<KeySet, HarnessError> {
        let json = self.jwks_json().await?;
        KeySet::from_jwks_json(&json)
            .map_err(|err| harness_error(format!("JWKS did not load: {err}\n{json}")))
    }

    /// Add a new signing key and make it current; the old key stays published.
    pub async fn rotate(&mut self) -> Result<KeyChange, HarnessError> {
        self.command("ROTATE", "ROTATED").await
    }

    /// Unpublish every key of the token algorithm except the current one.
    pub async fn retire(&mut self) -> Result<KeyChange, HarnessError> {
        self.command("RETIRE", "RETIRED").await
    }

    /// How many JWKS, discovery and token requests the provider has served so far.
    pub async fn request_counts(&mut self) -> Result<RequestCounts, HarnessError> {
        self.send("COUNTS").await?;
        self.wait_for("COUNTS", COMMAND_TIMEOUT).await
    }

    /// Stop the provider and wait until the process has exited.
    pub async fn stop(&mut self) -> Result<(), HarnessError> {
        self.child
            .start_kill()
            .map_err(|err| harness_error(format!("kill: {err}")))?;
        self.stdin = None;
        tokio::time::timeout(COMMAND_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| harness_error("provider did not exit after kill"))?
            .map_err(|err| harness_error(format!("wait: {err}")))?;
        Ok(())
    }

    async fn command(&mut self, command: &str, reply: &str) -> Result<KeyChange, HarnessError> {
        self.send(command).await?;
        let change: KeyChange = self.wait_for(reply, COMMAND_TIMEOUT).await?;
        self.info.kid.clone_from(&change.kid);
        self.info.kids.clone_from(&change.kids);
        Ok(change)
    }

    async fn send(&mut self, command: &str) -> Result<(), HarnessError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| harness_error("provider stdin is closed"))?;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|err| harness_error(format!("writing {command}: {err}")))?;
        stdin
            .flush()
            .await
            .map_err(|err| harness_error(format!("writing {command}: {err}")))
    }

    /// Read stdout lines until one starts with `tag`; parse the JSON after it. Fails on an
    /// `ERROR` line, on EOF and at the deadline, with the provider's stderr in the message.
    async fn wait_for<T: serde::de::DeserializeOwned>(
        &mut self,
        tag: &str,
        timeout: Duration,
    ) -> Result<T, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.stdout.next_line()).await {
                Err(_) => {
                    return Err(self.failure(&format!("no {tag} line within {timeout:?}")));
                }
                Ok(Err(err)) => return Err(self.failure(&format!("reading stdout: {err}"))),
                Ok(Ok(None)) => {
                    // The child is exiting: collect its status and the rest of its stderr.
                    let status =
                        match tokio::time::timeout(COMMAND_TIMEOUT, self.child.wait()).await {
                            Ok(Ok(status)) => status.to_string(),
                            _ => "status unknown".to_owned(),
                        };
                    if let Some(task) = self.stderr_task.take() {
                        let _ = tokio::time::timeout(COMMAND_TIMEOUT, task).await;
                    }
                    return Err(
                        self.failure(&format!("provider exited ({status}) before printing {tag}"))
                    );
                }
                Ok(Ok(Some(line))) => line,
            };
            let Some((found, json)) = line.split_once(' ') else {
                continue;
            };
            if found == "ERROR" {
                return Err(self.failure(&format!("provider refused: {json}")));
            }
            if found == tag {
                return serde_json::from_str(json)
                    .map_err(|err| self.failure(&format!("bad {tag} line {json:?}: {err}")));
            }
        }
    }

    fn failure(&self, what: &str) -> HarnessError {
        let stderr = self
            .stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default();
        harness_error(format!(
            "oidc-provider: {what}\n--- provider stderr ---\n{stderr}"
        ))
    }
}

impl Drop for AuthorizationServer {
    fn drop(&mut self) {
        // `kill_on_drop` covers this too; being explicit keeps it true if the child is ever moved.
        let _ = self.child.start_kill();
    }
}

/// `tests/interop/`: package.json, package-lock.json, provider.mjs.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

#[derive(Debug, Clone)]
struct Toolchain {
    node: PathBuf,
}

/// Node.js found and the npm packages installed: once per test binary, whichever test comes first.
fn prepare() -> Result<Toolchain, HarnessError> {
    static PREPARED: OnceLock<Result<Toolchain, String>> = OnceLock::new();
    PREPARED
        .get_or_init(|| {
            let node = tool_path("BEARER_GUARD_NODE", "node");
            check_node(&node)?;
            install_packages()?;
            Ok(Toolchain { node })
        })
        .clone()
        .map_err(HarnessError)
}

fn tool_path(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// Node.js at `node` runs and is recent enough; otherwise an error that says how to install it.
pub fn check_node(node: &Path) -> Result<String, String> {
    let output = std::process::Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| {
            format!(
                "Node.js not found (`{} --version`: {err}).\n{INSTALL_HINT}",
                node.display()
            )
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version
        .strip_prefix('v')
        .and_then(|rest| rest.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if output.status.success() && major >= MIN_NODE_MAJOR => Ok(version),
        _ => Err(format!(
            "Node.js at `{}` reports version {version:?}; need >= {MIN_NODE_MAJOR}.\n{INSTALL_HINT}",
            node.display()
        )),
    }
}

/// `npm ci` for `tests/interop/` unless the pinned oidc-provider is already installed there.
///
/// Within one test binary the caller's `OnceLock` makes this run once. Test processes running in
/// parallel (cargo-nextest, several `cargo test`s) may each get here: each installs into its own
/// staging directory and moves the result into place with one `rename`, so nobody ever sees, or
/// deletes, a half-installed `node_modules`; a process that loses the race keeps the winner's.
fn install_packages() -> Result<(), String> {
    let dir = interop_dir();
    let wanted = pinned_version(&dir)?;
    let target = dir.join("node_modules");
    if installed_version(&target).as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let npm = tool_path(
        "BEARER_GUARD_NPM",
        if cfg!(windows) { "npm.cmd" } else { "npm" },
    );
    eprintln!(
        "interop: installing oidc-provider {wanted} with `npm ci` in {}",
        dir.display()
    );
    let staging = dir.join(format!(".npm-staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = stage_and_install(&npm, &dir, &staging, &target, &wanted);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage_and_install(
    npm: &Path,
    dir: &Path,
    staging: &Path,
    target: &Path,
    wanted: &str,
) -> Result<(), String> {
    let io = |what: &str, err: std::io::Error| format!("{what}: {err}");
    std::fs::create_dir_all(staging)
        .map_err(|err| io("creating the npm staging directory", err))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(dir.join(file), staging.join(file))
            .map_err(|err| io(&format!("copying {file}"), err))?;
    }
    let output = std::process::Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(staging)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| {
            format!(
                "npm not found (`{} ci`: {err}).\n{INSTALL_HINT}",
                npm.display()
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`npm ci` for {} failed ({}):\n{}\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let staged = staging.join("node_modules");
    if std::fs::rename(&staged, target).is_ok() {
        return Ok(());
    }
    // Someone else's install landed first, or a stale `node_modules` is in the way.
    if installed_version(target).as_deref() == Some(wanted) {
        return Ok(());
    }
    std::fs::remove_dir_all(target).map_err(|err| io("removing a stale node_modules", err))?;
    std::fs::rename(&staged, target).map_err(|err| io("moving node_modules into place", err))
}

/// The oidc-provider version installed under `node_modules`, if any.
fn installed_version(node_modules: &Path) -> Option<String> {
    let text = std::fs::read_to_string(node_modules.join("oidc-provider/package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

/// The oidc-provider version package.json pins.
fn pinned_version(dir: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(dir.join("package.json"))
        .map_err(|err| format!("reading {}/package.json: {err}", dir.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| format!("package.json: {err}"))?;
    json["dependencies"]["oidc-provider"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "package.json does not pin oidc-provider".to_owned())
}
