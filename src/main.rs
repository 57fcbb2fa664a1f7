//! certctl's switchboard: parse the command line, resolve settings, build the runtime,
//! run the subcommand, print `certctl: {err:#}` and exit 0, 1 (failure) or 2 (bad input).

use certctl::cli::{Cli, Command, Origins};
use certctl::settings::{ConfigFile, Global};
use certctl::{cmd, error, log};
use clap::{CommandFactory, FromArgMatches};

fn main() {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(mut cli) => {
            cli.global.origins = Origins::from_matches(&matches);
            cli
        }
        Err(e) => e.exit(),
    };
    let code = match run(cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("certctl: {err:#}");
            error::exit_code(&err)
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = ConfigFile::load(cli.global.config.as_deref())?;
    let global = Global::resolve(&cli.global, &config)?;
    log::set(global.verbosity);
    if let Some(path) = &config.path {
        log::verbose(format_args!("read the config file {}", path.display()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Request(args) => cmd::request::run(&global, &config, args).await,
            Command::Account(certctl::cli::AccountCommand::Thumbprint(args)) => {
                cmd::account::thumbprint(&global, &config, args).await
            }
            Command::Ca(command) => cmd::ca::run(&global, command),
            Command::Import(certctl::cli::ImportCommand::Certbot(args)) => {
                cmd::import::certbot(&global, &config, args)
            }
            Command::Renew(args) => cmd::renew::run(&global, &config, args).await,
            Command::Revoke(args) => cmd::revoke::run(&global, args).await,
            Command::Delete(args) => cmd::delete::run(&global, args),
            Command::Concat(args) => cmd::concat::run(&global, args),
            Command::List(args) => cmd::list::run(&global, args),
        }
    })
}
