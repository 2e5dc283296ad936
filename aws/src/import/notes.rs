//! What the import says of its inputs: each note has a kind, for callers that decide on
//! it (the ELBv2 API refuses a call whose resources give a note of some kinds), and a
//! text for people. Callers decide on the kind, never on the wording.

use std::fmt;

/// What a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Something in the inputs is not in the configuration (left out), or would not work
    /// as it does on AWS: a rule, an action, an attribute or a setting hostalb cannot carry.
    NotCarried,
    /// A target group has no targets: they come from `targets`, a Docker selector or
    /// RegisterTargets.
    NoTargets,
    /// A listener binds another loopback address (127.0.0.2, ...) because its port is
    /// taken on 127.0.0.1 by another imported listener.
    AddressMoved,
    /// An HTTPS listener's certificates are read from PEM files (ACM cannot export them).
    CertificateFiles,
    /// A target group's HealthCheckProtocol differs from its protocol: hostalb checks
    /// with the group's protocol.
    HealthCheckProtocol,
}

/// One note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteKind,
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The notes of one import.
#[derive(Debug, Default)]
pub(crate) struct Notes(pub(crate) Vec<Note>);

impl Notes {
    /// A note of what could not be carried ([`NoteKind::NotCarried`]).
    pub(crate) fn push(&mut self, text: String) {
        self.push_as(NoteKind::NotCarried, text);
    }

    pub(crate) fn push_as(&mut self, kind: NoteKind, text: String) {
        self.0.push(Note { kind, text });
    }
}
