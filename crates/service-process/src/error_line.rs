//! The one line a service prints when it stops on an error: the error and its causes,
//! joined by `: `, each cause once. Many errors here repeat their source in their own
//! message (`"cannot listen on {addr}: {source}"`); `{:#}` would print such a cause twice.

use std::error::Error;

/// `error` and its chain of causes on one line, leaving out a cause the text already ends with.
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut line = single_line(&error.to_string());
    let mut cause = error.source();
    while let Some(current) = cause {
        let text = single_line(&current.to_string());
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = current.source();
    }
    line
}

/// A message of several lines (libpq's, for one) as one: its lines joined by `; `.
fn single_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("Address already in use (os error 98)")]
    struct InUse;

    #[derive(Debug, thiserror::Error)]
    enum Startup {
        #[error("cannot listen on {addr}: {source}")]
        Listen {
            addr: String,
            #[source]
            source: InUse,
        },
        #[error("cannot build the client")]
        Client(#[source] InUse),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("start-up failed")]
    struct Context(#[source] Startup);

    #[test]
    fn a_cause_the_message_already_names_is_printed_once() {
        let error = Context(Startup::Listen {
            addr: "0.0.0.0:8080".into(),
            source: InUse,
        });
        assert_eq!(
            one_line(&error),
            "start-up failed: cannot listen on 0.0.0.0:8080: Address already in use (os error 98)"
        );
    }

    #[test]
    fn a_cause_the_message_leaves_out_is_appended() {
        assert_eq!(
            one_line(&Context(Startup::Client(InUse))),
            "start-up failed: cannot build the client: Address already in use (os error 98)"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("connection to server failed\n\tIs the server running?\n")]
    struct Libpq;

    #[test]
    fn a_message_of_several_lines_becomes_one() {
        assert_eq!(
            one_line(&Libpq),
            "connection to server failed; Is the server running?"
        );
    }
}
