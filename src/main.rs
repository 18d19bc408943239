//! The `secretgate` binary: wiring only.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use secretgate::cli::{
    AdmissionPoliciesArgs, AuditArgs, CertsArgs, CheckArgs, Command, LeaderArgs, ServeArgs,
    UnregisterArgs,
};
use secretgate::server::{AppState, Config, Server};
use secretgate::{
    audit, certs, check, cli, connect, leader, messages, metrics, owner_events, policy, signal,
    telemetry, unregister,
};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Certs(args) => write_certs(&args),
        Command::Crd => {
            print!("{}", policy::crd_yaml());
            Ok(())
        }
        Command::Check(args) => return exit_status(run_check(&args)),
        Command::AdmissionPolicies(args) => print_admission_policies(&args),
        Command::Audit(args) => return exit_status(run_audit(&args)),
        Command::Unregister(args) => return exit_status(run_unregister(&args)),
        Command::Completions { shell } => {
            cli::completions(shell, &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", messages::render(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `check` and `audit` exit 0 (pass), 1 (denied) or 2 (usage or input error).
fn exit_status(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", messages::render(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    Ok(check::run(args, &mut out)?)
}

fn print_admission_policies(args: &AdmissionPoliciesArgs) -> anyhow::Result<()> {
    let snapshot = policy::file::load(&args.policy)?;
    let scope = secretgate::admission_policy::Scope {
        excluded_namespaces: args.excluded_namespaces.clone(),
    };
    let plan = secretgate::admission_policy::plan(&snapshot, &scope);
    print!("{}", secretgate::admission_policy::to_yaml(&plan)?);
    Ok(())
}

fn run_audit(args: &AuditArgs) -> anyhow::Result<u8> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider is already installed"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let now = time::OffsetDateTime::now_utc();
    let report = runtime.block_on(async {
        let cluster = connect::connect(&args.connection).await?;
        let sources = args.instance_secret_namespaces.iter().cloned().collect();
        audit::run(cluster.client.clone(), now, &sources)
            .await
            .map_err(|e| cluster.explain(e))
    })?;
    audit::write(&report, args.output, now, &mut std::io::stdout().lock())?;
    Ok(u8::from(report.any_denied()))
}

/// `unregister`: 0 when every configuration is gone, 1 when any delete failed.
fn run_unregister(args: &UnregisterArgs) -> anyhow::Result<u8> {
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider is already installed"))?;
    let timeout = seconds(args.timeout_seconds, "--timeout-seconds")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let targets = unregister::targets(&args.validating, &args.mutating);
    let (cluster, results) = runtime.block_on(async {
        let run = async {
            let cluster = connect::connect(&args.connection).await?;
            let results = unregister::run(&cluster.client, &targets).await;
            anyhow::Ok((cluster, results))
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| {
            anyhow::anyhow!(
                "gave up after --timeout-seconds {}; raise it, or check that the API server answers",
                timeout.as_secs_f64()
            )
        })?
    })?;
    let mut failed = false;
    for (target, result) in targets.iter().zip(results) {
        match result {
            Ok(unregister::Outcome::Deleted) => println!("deleted {target}"),
            Ok(unregister::Outcome::AlreadyGone) => println!("{target} already gone"),
            // Every delete fails alike then: said once, and exit 2 as documented.
            Err(e) if connect::is_unreachable_error(&e) => return Err(cluster.explain(e)),
            Err(e) => {
                failed = true;
                eprintln!("{}", messages::render(&e));
            }
        }
    }
    Ok(u8::from(failed))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.print_default_policy {
        print!("{}", policy::default_policy_yaml());
        return Ok(());
    }
    telemetry::init(args.log_format);
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider is already installed"))?;

    // Nothing is written or bound before the configuration is known to be usable: the
    // policy file, the flags and, in cluster mode, the kubeconfig.
    let (policy_file, snapshot) = match &args.policy {
        Some(path) => {
            let (file, snapshot) = policy::file::PolicyFile::load(path)?;
            tracing::info!(file = %path.display(), policies = snapshot.policy_count(), "policy file loaded");
            policy::file::log_overlaps(&snapshot);
            (Some(file), snapshot)
        }
        None => (None, policy::Snapshot::with_default()),
    };
    // Inside a cluster the policies live there, unless a file is given.
    let cluster = args.kube
        || (args.policy.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some());
    anyhow::ensure!(
        cluster || (args.connection.kubeconfig.is_none() && args.connection.context.is_none()),
        "--kubeconfig and --context choose the cluster of cluster mode; add --kube (or drop them)"
    );
    let lease = leader::election_namespace(
        args.leader.leader_election,
        cluster,
        args.leader.leader_election_namespace.as_deref(),
    )?
    .map(|namespace| lease_config(&args.leader, namespace))
    .transpose()?;
    let cert_reload_interval = seconds(args.cert_reload_seconds, "--cert-reload-seconds")?;
    let header_read_timeout = seconds(args.header_timeout_seconds, "--header-timeout-seconds")?;
    let drain_timeout = seconds(args.drain_timeout_seconds, "--drain-timeout-seconds")?;
    let policy_reload = seconds(args.policy_reload_seconds, "--policy-reload-seconds")?;
    let registry = prometheus::Registry::new();
    let audit_loop = match cluster {
        true => audit_config(
            &args.audit,
            args.instance_secrets
                .then_some(&args.instance_secret_namespaces),
            &registry,
        )?,
        false => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Reads the kubeconfig (or the pod's service account); connects to nothing yet.
    let kube = match cluster {
        true => Some(runtime.block_on(connect::connect(&args.connection))?),
        false => None,
    };
    let (tls_cert, tls_key) = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        _ => dev_certificates(&args.dev_certs_dir)?,
    };
    let config = Config {
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        tls_cert,
        tls_key,
        client_ca: args.client_ca,
        cert_reload_interval,
        max_body_bytes: args.max_body_bytes,
        header_read_timeout,
        drain_timeout,
    };
    let metrics = Arc::new(metrics::Metrics::new(registry.clone())?);
    metrics.policies.set(snapshot.policy_count() as i64);
    metrics
        .policy_last_reload
        .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
    // Events on denied Secrets' owners: cluster mode only (a client to write them).
    let (owner_event_sender, owner_event_receiver) = if cluster && args.owner_events {
        let metrics = owner_events::OwnerEventMetrics::new(&registry)?;
        let (sender, receiver) =
            owner_events::channel(owner_events::CHANNEL_CAPACITY, metrics.clone());
        (Some(sender), Some((receiver, metrics)))
    } else {
        (None, None)
    };
    let state = AppState {
        policies: Arc::new(ArcSwap::from_pointee(snapshot)),
        metrics,
        // File and default policies are in force as soon as they are read; cluster
        // policies after the first full sync.
        ready: Arc::new(AtomicBool::new(!cluster)),
        max_body_bytes: config.max_body_bytes,
        lane: Arc::new(secretgate::server::evaluation::Lane::for_this_machine()),
        echo: args.echo,
        owner_events: owner_event_sender,
    };

    runtime.block_on(async move {
        // One SIGTERM/SIGINT, seen by the server (drain) and the elector (release).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal::shutdown().await;
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };
        let mut elector = None;
        if let Some(file) = policy_file {
            let (policies, metrics) = (state.policies.clone(), state.metrics.clone());
            tokio::spawn(file.watch(policy_reload, policies, metrics));
        }
        if let Some(connect::Cluster { client, url, origin }) = kube {
            tracing::info!(%url, %origin, "cluster mode");
            // Writers check this handle; admission never does.
            let leadership = match lease {
                Some(config) => {
                    tracing::info!(
                        lease = %config.lease(),
                        identity = %config.identity,
                        "leader election on: the leader writes statuses"
                    );
                    let candidate = leader::Elector::new(client.clone(), config)?
                        .with_metrics(state.metrics.clone());
                    let leadership = candidate.leadership();
                    elector = Some(tokio::spawn(candidate.run(stopped())));
                    leadership
                }
                None => {
                    tracing::info!("leader election off: this replica writes statuses");
                    state.metrics.leader.set(1);
                    leader::Leadership::always()
                }
            };
            let targets = policy::watch::Targets {
                policies: state.policies.clone(),
                ready: state.ready.clone(),
                metrics: state.metrics.clone(),
                leadership,
                instance: match args.instance_secrets {
                    false => None,
                    true => Some(policy::watch::InstanceTargets {
                        allowed_sources: args.instance_secret_namespaces.iter().cloned().collect(),
                        metrics: secretgate::instance::InstanceMetrics::new(&registry)?,
                    }),
                },
                pull_secret_registries: args.pull_secret_registries,
                mode_labels: match args.label_namespaces {
                    false => None,
                    true => Some(secretgate::mode_labels::LabelMetrics::new(&registry)?),
                },
                admission_policies: match args.publish_admission_policies {
                    false => None,
                    true => Some(secretgate::admission_policy::sync::PublishTargets {
                        scope: secretgate::admission_policy::Scope {
                            excluded_namespaces: args.admission_policy_excluded_namespaces.clone(),
                        },
                        metrics: secretgate::admission_policy::sync::PublishMetrics::new(
                            &registry,
                        )?,
                    }),
                },
                audit: audit_loop,
            };
            if let Some((receiver, metrics)) = owner_event_receiver {
                let config = owner_events::Config::from_env();
                tracing::info!(instance = %config.instance, "owner events on: denied Secrets' owners get an Event");
                tokio::spawn(owner_events::run(client.clone(), receiver, config, metrics));
            }
            tokio::spawn(policy::watch::run(client, targets));
            tracing::info!("watching ProjectPolicies, Namespaces and Secret metadata");
        }
        let server = Server::bind(config, state).await?;
        tracing::info!(
            listen = %server.local_addr()?,
            metrics = %server.metrics_addr()?,
            "secretgate serving"
        );
        server.run(stopped()).await;
        // The release started with the signal; wait for it, bounded, so the next leader
        // need not wait for the lease to expire.
        if let Some(task) = elector
            && tokio::time::timeout(RELEASE_WAIT, task).await.is_err()
        {
            tracing::warn!("the lease was not released in time; it will expire");
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The development pair under `dir`, created on first use.
fn dev_certificates(
    dir: &std::path::Path,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert = dir.join(certs::TLS_CERT);
    let key = dir.join(certs::TLS_KEY);
    if !cert.exists() || !key.exists() {
        certs::DevCertificates::generate(&certs::default_names())?.write_to(dir)?;
        tracing::info!(dir = %dir.display(), "created development certificates");
    }
    Ok((cert, key))
}

fn write_certs(args: &CertsArgs) -> anyhow::Result<()> {
    if args.print_ca_bundle {
        println!("{}", certs::ca_bundle_of(&args.out_dir)?);
        return Ok(());
    }
    if !args.force {
        certs::refuse_existing(&args.out_dir)?;
    }
    let names = if args.names.is_empty() {
        certs::default_names()
    } else {
        args.names.clone()
    };
    let generated = certs::DevCertificates::generate(&names)?;
    generated.write_to(&args.out_dir)?;
    eprintln!(
        "wrote {}/{{ca.crt,ca.key,tls.crt,tls.key}} for {} (development only)",
        args.out_dir.display(),
        names.join(", ")
    );
    let again = match args.out_dir.as_os_str() == "certs" {
        true => String::new(),
        false => format!(" --out-dir {}", args.out_dir.display()),
    };
    eprintln!(
        "caBundle for the webhook configurations (again later: `secretgate certs{again} --print-ca-bundle`):"
    );
    println!("{}", generated.ca_bundle());
    Ok(())
}

/// The continuous audit's configuration, from the flags (`None`: `--reports=off`).
fn audit_config(
    flags: &cli::AuditLoopArgs,
    instance_sources: Option<&Vec<String>>,
    registry: &prometheus::Registry,
) -> anyhow::Result<Option<audit::continuous::Config>> {
    if flags.reports == cli::ReportsChoice::Off {
        tracing::info!("continuous audit off (--reports=off)");
        return Ok(None);
    }
    let interval = seconds(flags.audit_interval_seconds, "--audit-interval-seconds")?;
    anyhow::ensure!(
        interval >= Duration::from_secs(60),
        "--audit-interval-seconds must be at least 60 (a full pass reads every Secret)"
    );
    anyhow::ensure!(
        flags.audit_requests_per_second.is_finite() && flags.audit_requests_per_second >= 0.1,
        "--audit-requests-per-second must be at least 0.1"
    );
    Ok(Some(audit::continuous::Config {
        choice: flags.reports,
        interval,
        tick: audit::continuous::TICK,
        requests_per_second: flags.audit_requests_per_second,
        instance_sources: instance_sources.map(|ns| ns.iter().cloned().collect()),
        credentials: credential_checker(flags, registry)?.map(Arc::new),
        metrics: audit::continuous::AuditMetrics::new(registry)?,
    }))
}

/// The registry login checker, with `--credential-checks`.
fn credential_checker(
    flags: &cli::AuditLoopArgs,
    registry: &prometheus::Registry,
) -> anyhow::Result<Option<secretgate::credentials::CredentialChecker>> {
    if !flags.credential_checks {
        return Ok(None);
    }
    let extra_ca_pem = match &flags.credential_check_ca {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read --credential-check-ca {}", path.display()))?,
        ),
    };
    let config = secretgate::credentials::CheckerConfig {
        timeout: seconds(
            flags.credential_check_timeout_seconds,
            "--credential-check-timeout-seconds",
        )?,
        concurrency: flags.credential_check_concurrency,
        extra_ca_pem,
        ..Default::default()
    };
    let checker = secretgate::credentials::CredentialChecker::new(&config, registry)
        .context("credential checks (--credential-checks)")?;
    tracing::info!(
        concurrency = config.concurrency,
        timeout_seconds = config.timeout.as_secs_f64(),
        "credential checks on: the audit logs in to the registries policies list in credentialHealth"
    );
    Ok(Some(checker))
}

/// How long the exit waits for the lease release after draining.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The lease this replica campaigns for, from the flags.
fn lease_config(args: &LeaderArgs, namespace: String) -> anyhow::Result<leader::LeaseConfig> {
    let duration = seconds(args.lease_duration_seconds, "--lease-duration-seconds")?;
    let renew_deadline = seconds(
        args.lease_renew_deadline_seconds,
        "--lease-renew-deadline-seconds",
    )?;
    let config = leader::LeaseConfig {
        duration,
        renew_deadline,
        renew_interval: (duration / 3).min(renew_deadline / 2),
        retry_period: seconds(args.lease_retry_seconds, "--lease-retry-seconds")?,
        ..leader::LeaseConfig::new(namespace, args.lease_name.clone(), leader::identity())
    };
    config.validate()?;
    Ok(config)
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds"))
}
