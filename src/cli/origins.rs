//! Which global options came from the environment rather than the command line, kept from
//! clap's matches so that settings can name the source of a bad value.

/// Which global options clap took from the environment rather than the command line
/// (clap reads both for `--state-dir` and the others with an `env`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    from_env: Vec<String>,
}

impl Origins {
    pub fn from_matches(matches: &clap::ArgMatches) -> Self {
        let ids = ["state_dir", "ssl_dir", "server", "ca_bundle", "config"];
        Self {
            from_env: ids
                .iter()
                .filter(|id| {
                    matches!(
                        matches.value_source(id),
                        Some(clap::parser::ValueSource::EnvVariable)
                    )
                })
                .map(|id| (*id).to_owned())
                .collect(),
        }
    }

    /// Whether the option `id` (clap's id, e.g. "server") came from its variable.
    pub fn from_env(&self, id: &str) -> bool {
        self.from_env.iter().any(|e| e == id)
    }
}
