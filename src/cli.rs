//! Command line: `serve`, `check`, `audit`, `certs`, `crd`, `unregister`, `completions`. Every flag of `serve` can also be set from the
//! environment (`SECRETGATE_*`), except the connection flags (`--kubeconfig`, `--context`),
//! which every cluster command shares ([`ConnectionArgs`]) and which read `KUBECONFIG` as
//! kubectl does.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "secretgate",
    version,
    about = "Kubernetes admission webhook for Secrets and Pods"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admission webhooks over HTTPS.
    ///
    /// With no flags: listens on 127.0.0.1:8443 (metrics on 127.0.0.1:9090), creates
    /// development certificates under certs/ if absent, and applies the embedded default
    /// policy.
    #[command(
        after_help = "Examples:\n  secretgate serve\n  secretgate serve --listen 0.0.0.0:8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key --log-format json\n  secretgate serve --policy policy.yaml\n  secretgate serve --print-default-policy > policy.yaml"
    )]
    Serve(Box<ServeArgs>),
    /// Write a development CA and serving certificate, and print the caBundle (or, with
    /// --print-ca-bundle, print the caBundle of the CA already there).
    ///
    /// For development only: the CA key is written beside the certificates.
    #[command(
        after_help = "Examples:\n  secretgate certs\n  secretgate certs --print-ca-bundle\n  secretgate certs --out-dir /tmp/certs --name webhook.example.test --name 10.0.0.5"
    )]
    Certs(CertsArgs),
    /// Print the ProjectPolicy CustomResourceDefinition as YAML.
    #[command(
        after_help = "Examples:\n  secretgate crd | kubectl apply -f -\n  secretgate crd > charts/secretgate/crds/projectpolicies.secretgate.io.yaml"
    )]
    Crd,
    /// Evaluate Secret and Pod manifests, or AdmissionReviews, offline with the server's
    /// own code: for CI pipelines.
    ///
    /// Reads YAML or JSON (several documents per file, `List` objects, directories
    /// recursively for *.yaml, *.yml and *.json, `-` for stdin). A bare Secret or Pod is
    /// reviewed as a CREATE in its namespace (else --namespace); a workload (Deployment,
    /// StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob) through
    /// the Pod its template makes. Secrets in the input count as existing for the pods
    /// beside them. Other kinds are skipped. Exit status: 0 when every object passes, 1
    /// when any is denied, 2 for a usage or input error.
    #[command(
        after_help = "Examples:\n  secretgate check deploy/ secret.yaml\n  secretgate check -f deploy/\n  secretgate check -f secret.yaml --policy policy.yaml -o json\n  kubectl create secret tls web --cert=tls.crt --key=tls.key --dry-run=client -o yaml | secretgate check -f - -n team-a\n  helm template charts/app | secretgate check -f - --policy policy.yaml -o yaml"
    )]
    Check(CheckArgs),
    /// Print the ValidatingAdmissionPolicies and bindings that
    /// `serve --publish-admission-policies` keeps in a cluster, for GitOps: the rules of
    /// each ProjectPolicy that CEL can express, so they hold while the webhook is down.
    #[command(
        after_help = "Examples:\n  secretgate admission-policies --policy policy.yaml > vap.yaml\n  secretgate admission-policies --policy policy.yaml --excluded-namespaces secretgate,kube-system | kubectl apply -f -"
    )]
    AdmissionPolicies(AdmissionPoliciesArgs),
    /// Report what in a cluster breaks its policies now: every Secret (as if created
    /// again) and every Pod (what the webhook would inject), grouped by project and rule.
    ///
    /// Reads ProjectPolicies, Namespaces, ServiceAccounts, Secrets and Pods. Secrets are
    /// listed by metadata and read one at a time; values are never printed or kept. Pods
    /// are judged for the secrets they use, too. Exit status: 0, or 1 when a secret or pod
    /// would be denied, 2 when the cluster cannot be read.
    #[command(
        after_help = "Examples:\n  secretgate audit\n  secretgate audit --context prod -o json > audit.json\n  secretgate audit -o report | kubectl apply -f -\n  secretgate audit --kubeconfig ~/.kube/staging"
    )]
    Audit(AuditArgs),
    /// Delete webhook configurations by name: the chart's pre-delete hook, so an
    /// uninstalled release leaves behind no webhook that would refuse requests with no
    /// server to answer them.
    ///
    /// Uses the in-cluster service account (or --kubeconfig, as `audit`). One DELETE per name; a
    /// configuration already gone counts as deleted. Exit status: 0 when every one is
    /// gone, 1 when any could not be deleted, 2 when the cluster cannot be reached.
    #[command(
        after_help = "Examples:\n  secretgate unregister --validating sg-secretgate --validating sg-secretgate-policies --mutating sg-secretgate"
    )]
    Unregister(UnregisterArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  secretgate completions bash > /etc/bash_completion.d/secretgate\n  secretgate completions zsh > \"${fpath[1]}/_secretgate\"\n  secretgate completions fish > ~/.config/fish/completions/secretgate.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct AdmissionPoliciesArgs {
    /// Policy file, as for `serve --policy` and `check --policy`.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Namespaces left out, as the webhook registration leaves them out (comma-separated).
    #[arg(
        long,
        value_name = "NS,…",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub excluded_namespaces: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories or `-` (stdin) to read; the same as -f, and both may be mixed.
    #[arg(value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// File, directory or `-` (stdin) to read (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub filename: Vec<PathBuf>,
    /// Policy file, as for `serve --policy` (default: the embedded default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Output format; yaml adds the mutated pod (or workload).
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// How a command reaches the cluster (`serve --kube`, `audit`, `unregister`), as kubectl
/// does: see [`crate::connect`].
#[derive(Clone, Debug, Default, Args)]
pub struct ConnectionArgs {
    /// Kubeconfig file (default: the files $KUBECONFIG lists, else ~/.kube/config, else
    /// the in-cluster config of the pod).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = AuditFormat::Text)]
    pub output: AuditFormat,
    /// Namespaces instance secrets may be copied from, as for `serve`.
    #[arg(
        long,
        value_name = "NS,…",
        value_delimiter = ',',
        default_value = "secretgate"
    )]
    pub instance_secret_namespaces: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("configurations").required(true).multiple(true).args(["validating", "mutating"])))]
pub struct UnregisterArgs {
    /// ValidatingWebhookConfiguration to delete (repeatable).
    #[arg(long, value_name = "NAME")]
    pub validating: Vec<String>,
    /// MutatingWebhookConfiguration to delete (repeatable).
    #[arg(long, value_name = "NAME")]
    pub mutating: Vec<String>,
    /// Seconds all the deletes may take together.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_seconds: f64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Yaml,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    /// OpenReports objects (`openreports.io/v1alpha1` Report per namespace, ClusterReport),
    /// as a YAML stream for `kubectl apply -f -`.
    Report,
    /// wgpolicyk8s objects (`wgpolicyk8s.io/v1alpha2` PolicyReport per namespace,
    /// ClusterPolicyReport), for clusters that only have those CRDs.
    #[value(name = "policyreport")]
    PolicyReport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS webhook port.
    #[arg(long, env = "SECRETGATE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP port for /metrics, /healthz and /readyz.
    #[arg(
        long,
        env = "SECRETGATE_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: SocketAddr,
    /// Serving certificate (PEM chain). Without it, development certificates under
    /// --dev-certs-dir are used, and created if absent.
    #[arg(long, env = "SECRETGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "SECRETGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, env = "SECRETGATE_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Where development certificates live when --tls-cert is not given.
    #[arg(long, env = "SECRETGATE_DEV_CERTS_DIR", default_value = "certs")]
    pub dev_certs_dir: PathBuf,
    /// Seconds between checks of the certificate files for a new pair.
    #[arg(long, env = "SECRETGATE_CERT_RELOAD_SECONDS", default_value_t = 5.0)]
    pub cert_reload_seconds: f64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "SECRETGATE_MAX_BODY_BYTES", default_value_t = crate::server::Config::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds a client has to complete the TLS handshake and send request headers.
    #[arg(
        long,
        env = "SECRETGATE_HEADER_TIMEOUT_SECONDS",
        default_value_t = 10.0
    )]
    pub header_timeout_seconds: f64,
    /// Seconds in-flight reviews get to finish after SIGTERM.
    #[arg(long, env = "SECRETGATE_DRAIN_TIMEOUT_SECONDS", default_value_t = 20.0)]
    pub drain_timeout_seconds: f64,
    /// Policy file: ProjectPolicy documents, plus optional v1 Namespace documents (name
    /// and labels, for selectors), v1 Secret documents (name, namespace, labels and the
    /// secretgate.io/allowed-service-accounts annotation: which secrets exist, for
    /// injection and secretUse) and v1 ServiceAccount documents (their imagePullSecrets).
    /// Reloaded when its content changes.
    #[arg(long, env = "SECRETGATE_POLICY", conflicts_with = "kube")]
    pub policy: Option<PathBuf>,
    /// Seconds between checks of the policy file for changes.
    #[arg(long, env = "SECRETGATE_POLICY_RELOAD_SECONDS", default_value_t = 5.0)]
    pub policy_reload_seconds: f64,
    /// Read ProjectPolicies, Namespaces, ServiceAccounts and Secret metadata from the cluster (the
    /// default inside a cluster, when KUBERNETES_SERVICE_HOST is set and --policy is not
    /// given).
    #[arg(long, env = "SECRETGATE_KUBE")]
    pub kube: bool,
    /// Which cluster cluster mode reads (`--kubeconfig`, `--context`; no SECRETGATE_*
    /// variables: KUBECONFIG is read as kubectl reads it).
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Copy the instance secrets that policies name into their namespaces (cluster mode;
    /// only the elected replica writes). Needs RBAC to write Secrets in every namespace.
    #[arg(long, env = "SECRETGATE_INSTANCE_SECRETS", requires = "kube")]
    pub instance_secrets: bool,
    /// Keep the label secretgate.io/mode (Enforce, Warn, Audit) on every namespace, the
    /// mode of the policy governing it, so the Secret webhook can be registered twice:
    /// failurePolicy Fail where Enforce, Ignore where Warn or Audit (cluster mode; only
    /// the elected replica writes). Needs `patch` on namespaces.
    #[arg(long, env = "SECRETGATE_LABEL_NAMESPACES", requires = "kube")]
    pub label_namespaces: bool,
    /// Read the pull secrets (types kubernetes.io/dockerconfigjson and dockercfg only)
    /// to learn which registries each serves, for the policies' pullGuarantee (cluster
    /// mode). Only registry keys are kept; the data is dropped as it arrives. Uses the
    /// list/watch on secrets cluster mode already has.
    #[arg(long, env = "SECRETGATE_PULL_SECRET_REGISTRIES", requires = "kube")]
    pub pull_secret_registries: bool,
    /// Write an events.k8s.io Event (Warning, reason SecretDenied) on the owner of each
    /// Secret the webhook denies (its controller ownerReference, or the Certificate
    /// cert-manager's annotation names), so the refusal shows in `kubectl describe` of that
    /// object. Cluster mode; every replica, at most one Event per owner a minute, never
    /// delaying the review. Needs `create` and `patch` on events.k8s.io events and `get`
    /// on cert-manager.io certificates.
    #[arg(long, env = "SECRETGATE_OWNER_EVENTS", requires = "kube")]
    pub owner_events: bool,
    /// Also publish the rules CEL can express (name, type, required labels and
    /// annotations) as ValidatingAdmissionPolicies and bindings, kept in step with the
    /// policies, so they hold while the webhook is down (cluster mode; only the elected
    /// replica writes). Needs list, create, patch and delete on
    /// validatingadmissionpolicies and validatingadmissionpolicybindings.
    #[arg(long, env = "SECRETGATE_PUBLISH_ADMISSION_POLICIES", requires = "kube")]
    pub publish_admission_policies: bool,
    /// Namespaces the published admission policies leave out, as the webhook
    /// registration does (comma-separated; the chart passes its own namespace,
    /// kube-system and webhooks.excludedNamespaces).
    #[arg(
        long,
        env = "SECRETGATE_ADMISSION_POLICY_EXCLUDED_NAMESPACES",
        value_name = "NS,…",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    pub admission_policy_excluded_namespaces: Vec<String>,
    /// Namespaces instance secrets may be copied from (comma-separated).
    #[arg(
        long,
        env = "SECRETGATE_INSTANCE_SECRET_NAMESPACES",
        value_name = "NS,…",
        value_delimiter = ',',
        default_value = "secretgate"
    )]
    pub instance_secret_namespaces: Vec<String>,
    /// Log format.
    #[arg(long, env = "SECRETGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Print the embedded default policy as a ProjectPolicy YAML document and exit.
    #[arg(long)]
    pub print_default_policy: bool,
    /// Benchmarks only: answer every review allowed without evaluating it, as the
    /// same-stack ceiling secretgate is measured against.
    #[arg(long, hide = true)]
    pub echo: bool,
    #[command(flatten, next_help_heading = "Leader election")]
    pub leader: LeaderArgs,
    #[command(flatten, next_help_heading = "Continuous audit")]
    pub audit: AuditLoopArgs,
}

/// The continuous audit of `serve` in cluster mode (the elected replica only).
#[derive(Debug, Args)]
pub struct AuditLoopArgs {
    /// Report API the continuous audit writes: `auto` uses OpenReports
    /// (openreports.io/v1alpha1 Report/ClusterReport) when the cluster serves it, else
    /// wgpolicyk8s (PolicyReport/ClusterPolicyReport), else stays off with a log line.
    #[arg(long, env = "SECRETGATE_REPORTS", value_enum, default_value_t = ReportsChoice::Auto)]
    pub reports: ReportsChoice,
    /// Seconds between full audit passes (every Secret read again, every Pod listed);
    /// changed Secrets are audited within seconds in between.
    #[arg(
        long,
        env = "SECRETGATE_AUDIT_INTERVAL_SECONDS",
        default_value_t = 3600.0
    )]
    pub audit_interval_seconds: f64,
    /// API requests per second the audit may make (reads of Secrets, Pod list pages,
    /// report writes); admission and the other writers are not counted.
    #[arg(
        long,
        env = "SECRETGATE_AUDIT_REQUESTS_PER_SECOND",
        default_value_t = 10.0
    )]
    pub audit_requests_per_second: f64,
    /// Log in to registries with pull secrets, for projects whose policy lists those
    /// registries in `credentialHealth` (outbound connections from the elected replica).
    #[arg(long, env = "SECRETGATE_CREDENTIAL_CHECKS")]
    pub credential_checks: bool,
    /// Extra CA certificates (PEM) trusted for registry logins, besides the system's.
    #[arg(
        long,
        env = "SECRETGATE_CREDENTIAL_CHECK_CA",
        requires = "credential_checks"
    )]
    pub credential_check_ca: Option<PathBuf>,
    /// Seconds one registry login may take.
    #[arg(
        long,
        env = "SECRETGATE_CREDENTIAL_CHECK_TIMEOUT_SECONDS",
        default_value_t = 10.0
    )]
    pub credential_check_timeout_seconds: f64,
    /// Registry logins running at once.
    #[arg(
        long,
        env = "SECRETGATE_CREDENTIAL_CHECK_CONCURRENCY",
        default_value_t = 4
    )]
    pub credential_check_concurrency: usize,
}

/// Which report API the continuous audit writes (`serve --reports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportsChoice {
    /// OpenReports when served, else wgpolicyk8s, else off (with a log line).
    Auto,
    /// `openreports.io/v1alpha1` only.
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` only.
    Policyreport,
    /// No continuous audit.
    Off,
}

/// Which replica writes to the cluster (cluster mode only).
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// Elect one replica (a coordination.k8s.io Lease) to write to the cluster
    /// (ProjectPolicy statuses, instance-secret copies); every replica serves admission
    /// regardless. Default: on in cluster mode when the lease namespace is known, off
    /// otherwise. `--leader-election=false`: every replica writes.
    #[arg(
        long,
        env = "SECRETGATE_LEADER_ELECTION",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub leader_election: Option<bool>,
    /// Namespace of the leader lease (the chart sets POD_NAMESPACE from the downward API).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader lease. Replicas sharing it share one leader.
    #[arg(long, env = "SECRETGATE_LEASE_NAME", default_value = "secretgate")]
    pub lease_name: String,
    /// Seconds a leader lease stays valid unrenewed: how long the other replicas wait
    /// when the leader vanishes without releasing it.
    #[arg(
        long,
        env = "SECRETGATE_LEASE_DURATION_SECONDS",
        default_value_t = 15.0
    )]
    pub lease_duration_seconds: f64,
    /// Seconds the leader keeps writing while it cannot renew the lease; shorter than
    /// the lease duration.
    #[arg(
        long,
        env = "SECRETGATE_LEASE_RENEW_DEADLINE_SECONDS",
        default_value_t = 10.0
    )]
    pub lease_renew_deadline_seconds: f64,
    /// Seconds between attempts to take the lease (and between failed renewals). The
    /// leader renews every third of the lease duration (at most half the renew deadline).
    #[arg(long, env = "SECRETGATE_LEASE_RETRY_SECONDS", default_value_t = 2.0)]
    pub lease_retry_seconds: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into.
    #[arg(long, default_value = "certs")]
    pub out_dir: PathBuf,
    /// DNS name or IP address of the serving certificate (repeatable). Default:
    /// localhost, 127.0.0.1, ::1 and the chart's in-cluster service names.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
    /// Print the caBundle (base64 of the CA certificate) of the CA already in --out-dir,
    /// and write nothing.
    #[arg(long, conflicts_with_all = ["names", "force"])]
    pub print_ca_bundle: bool,
}

/// Parses the command line, with `check`'s inputs in the order given, positional and
/// `-f` alike (in `files`; `filename` left empty).
pub fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = Cli::command().get_matches();
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let (Command::Check(args), Some(("check", sub))) = (&mut cli.command, matches.subcommand()) {
        let mut given: Vec<(usize, PathBuf)> = Vec::new();
        for id in ["files", "filename"] {
            if let (Some(at), Some(values)) = (sub.indices_of(id), sub.get_many::<PathBuf>(id)) {
                given.extend(at.zip(values.cloned()));
            }
        }
        given.sort_by_key(|(at, _)| *at);
        args.files = given.into_iter().map(|(_, path)| path).collect();
        args.filename.clear();
    }
    cli
}

impl CheckArgs {
    /// Every input: the positional ones, then those of `-f`.
    pub fn inputs(&self) -> Vec<PathBuf> {
        self.files.iter().chain(&self.filename).cloned().collect()
    }
}

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory as _;
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "secretgate", out);
}
