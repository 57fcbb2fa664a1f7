//! certctl's switchboard: parse the command line, resolve settings, build the runtime,
//! run the subcommand until it ends or SIGINT/SIGTERM stops it, print `certctl: {err:#}` and
//! exit 0, 1 (failure), 2 (bad input), 130 (SIGINT) or 143 (SIGTERM).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use certctl::cli::{Cli, Command, Origins};
use certctl::settings::{ConfigFile, Global};
use certctl::{challenge, cmd, error, log};
use clap::{CommandFactory, FromArgMatches};
use futures_util::FutureExt;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How long the challenge answers of interrupted orders get to be taken down.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

fn main() {
    // `check` is a monitoring plugin: whatever keeps it from checking is UNKNOWN (3)
    let plugin = std::env::args().skip(1).any(|a| a == "check");
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) if plugin && e.use_stderr() => {
            let _ = e.print();
            println!("CERTCTL UNKNOWN - the command line is not valid (see stderr)");
            std::process::exit(3)
        }
        Err(e) => e.exit(),
    };
    let plugin = matches.subcommand_name() == Some("check");
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(mut cli) => {
            cli.global.origins = Origins::from_matches(&matches);
            cli
        }
        Err(e) => e.exit(),
    };
    let (code, message) = match run(cli) {
        Ok(None) => (0, None),
        Ok(Some((signal, code, unfinished))) => {
            let left = match unfinished {
                0 => "no challenge answer is left in place".to_owned(),
                n => format!(
                    "{n} challenge cleanups did not finish within {}s (a token may be left in place)",
                    CLEANUP_WAIT.as_secs()
                ),
            };
            (code, Some(interrupted(signal, &left)))
        }
        // `check` printed its status line already
        Err(err) if err.is::<error::ExitWith>() => (error::exit_code(&err), None),
        Err(err) if plugin => {
            println!(
                "CERTCTL UNKNOWN - {}",
                format!("{err:#}").replace('\n', " ")
            );
            (3, Some(format!("certctl: {err:#}")))
        }
        Err(err) => (error::exit_code(&err), Some(format!("certctl: {err:#}"))),
    };
    end(code, message.as_deref());
}

/// Ok(None) when the command ended; the signal, its exit code and the cleanups that did not
/// finish when a signal stopped it.
fn run(cli: Cli) -> anyhow::Result<Option<(&'static str, i32, usize)>> {
    let config = ConfigFile::load(cli.global.config.as_deref())?;
    let global = Global::resolve(&cli.global, &config)?;
    log::set(global.verbosity);
    log::set_journal(global.journal);
    if let Some(path) = config.path() {
        log::verbose(format_args!("read the config file {}", path.display()));
    }
    watch_signals()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (mut interrupt, mut terminate) = signals()?;
        let mut command = Box::pin(async {
            match cli.command {
                Command::Request(args) => cmd::request::run(&global, &config, *args).await,
                Command::Reconfigure(args) => cmd::reconfigure::run(&global, &config, *args).await,
                Command::Deploy { names } => cmd::deploy::run(&global, &names),
                Command::Account(certctl::cli::AccountCommand::Thumbprint(args)) => {
                    cmd::account::thumbprint(&global, &config, args).await
                }
                Command::Ca(command) => cmd::ca::run(&global, command),
                Command::Import(certctl::cli::ImportCommand::Certbot(args)) => {
                    cmd::import::certbot(&global, &config, args)
                }
                Command::Renew(args) => cmd::renew::run(&global, &config, args).await,
                Command::Revoke(args) => cmd::revoke::run(&global, args).await,
                Command::Delete(args) => cmd::delete::run(&global, args).await,
                Command::Concat(args) => cmd::concat::run(&global, args),
                Command::List(args) => cmd::list::run(&global, args),
                Command::Check(args) => cmd::check::run(&global, args).await,
                Command::Store(command) => cmd::store::run(&global, &config, command),
                Command::Sync(args) => cmd::sync::run(&global, &config, args).await,
            }
        });
        let mut ended = tokio::select! {
            biased;
            _ = interrupt.recv() => Err(("SIGINT", 130)),
            _ = terminate.recv() => Err(("SIGTERM", 143)),
            result = &mut command => Ok(result),
        };
        // a command that failed with a signal pending failed because of it (Ctrl-C at a
        // prompt); one turn of the runtime reads a signal that came while it did not await
        if matches!(ended, Ok(Err(_))) {
            tokio::task::yield_now().await;
            if interrupt.recv().now_or_never().is_some() {
                ended = Err(("SIGINT", 130));
            } else if terminate.recv().now_or_never().is_some() {
                ended = Err(("SIGTERM", 143));
            }
        }
        // a stopped command is dropped here: the guards of its orders hand their cleanups
        // over, and they are awaited (as any other pending cleanup) before the exit
        drop(command);
        let unfinished = challenge::finish_cleanups(CLEANUP_WAIT).await;
        match ended {
            Ok(result) => result.map(|()| None),
            Err((signal, code)) => Ok(Some((signal, code, unfinished))),
        }
    })
}

fn signals() -> std::io::Result<(Signal, Signal)> {
    Ok((
        signal(SignalKind::interrupt())?,
        signal(SignalKind::terminate())?,
    ))
}

/// The signals also reach a thread of their own, for a command busy in code that does not
/// await (waiting for the state lock, a prompt, a command without network): with no
/// challenge answer out, it ends the process at once, as the signal's default action would;
/// otherwise the command's `select!` takes the answers down first, and this thread ends the
/// process only if that takes far too long.
fn watch_signals() -> anyhow::Result<()> {
    let (registered, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let watching = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .and_then(|runtime| Ok((runtime.block_on(async { signals() })?, runtime)));
        let ((mut interrupt, mut terminate), runtime) = match watching {
            Ok(watching) => {
                let _ = registered.send(Ok(()));
                watching
            }
            Err(e) => {
                let _ = registered.send(Err(e));
                return;
            }
        };
        let (signal, code) = runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => ("SIGINT", 130),
                _ = terminate.recv() => ("SIGTERM", 143),
            }
        });
        if challenge::close() {
            std::thread::sleep(CLEANUP_WAIT + Duration::from_secs(5));
            end(
                code,
                Some(&interrupted(
                    signal,
                    "challenge cleanups did not finish in time (a token may be left in place)",
                )),
            );
        }
        end(
            code,
            Some(&interrupted(signal, "no challenge answer is left in place")),
        );
    });
    Ok(ready.recv()??)
}

fn interrupted(signal: &str, left: &str) -> String {
    format!("certctl: interrupted ({signal}); {left}; certificates not yet installed are unchanged")
}

/// Ends the process once: the first caller (the command, or the signal thread) prints its
/// message and exits; a later one waits for that.
fn end(code: i32, message: Option<&str>) -> ! {
    static ENDING: AtomicBool = AtomicBool::new(false);
    if ENDING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    // no hook outlives certctl (a signal may end it while one runs)
    certctl::hooks::kill_running();
    if let Some(message) = message {
        log::emit(log::Priority::Error, message);
    }
    std::process::exit(code)
}
