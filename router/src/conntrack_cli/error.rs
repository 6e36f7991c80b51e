//! What the tool says when a command line is wrong, and its exit statuses.

/// Prefix of every message the tool writes to stderr.
pub const PROG: &str = "conntrack v1.4.7 (conntrack-tools)";

/// Exit status of a parameter problem (`PARAMETER_PROBLEM`).
pub const EXIT_PARAMETER: i32 = 2;
/// Exit status of an operation that failed (`OTHER_PROBLEM`).
pub const EXIT_FAILURE: i32 = 1;

/// A problem with the command line, worded as conntrack 1.4.7 words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtError {
    #[error("unknown option `{token}'")]
    UnknownOption { token: String },
    #[error("option `{token}' requires an argument")]
    MissingArgument { token: String },
    #[error("Invalid commands combination")]
    CommandCombination,
    #[error("Illegal option `--{option}' with this command")]
    IllegalOption { option: &'static str },
    #[error("You need to supply the `--{option}' option for this command")]
    RequiredOption { option: &'static str },
    #[error("Invalid IP address `{token}'")]
    BadAddress { token: String },
    #[error("`{token}' unsupported protocol")]
    BadProtocol { token: String },
    #[error("Bad parameter `{token}'")]
    BadParameter { token: String },
    #[error("unknown TCP state `{token}'")]
    BadTcpState { token: String },
    #[error("unknown type `{token}'")]
    UnknownTable { token: String },
    #[error("Invalid netmask")]
    BadNetmask,
    #[error("Can't do that command with tables `dying' and `unconfirmed'")]
    DyingTable,
    #[error("cannot specify `--src-nat' or `--dst-nat' with `--any-nat'")]
    AnyNatWith,
    #[error("Can't use -z with filtering parameters")]
    ZeroWithFilter,
    #[error("CIDR notation unavailable for `--{0}'")]
    NoCidr(&'static str),
    #[error("Can't use --mask-{0} without --{0}")]
    MaskWithout(&'static str),
    #[error("mismatched address family")]
    FamilyMismatch,
    #[error("unknown label '{token}'")]
    UnknownLabel { token: String },
    #[error("Invalid port `{token}'")]
    BadPort { token: String },
    #[error("you have to specify `--{0}' and `--{1}'")]
    NeedPair(&'static str, &'static str),
    /// Accepted by the parser, refused by the (emulated) kernel: exit 1.
    #[error("Operation failed: {0}")]
    OperationFailed(&'static str),
}

impl CtError {
    /// The tool's exit status for this error.
    pub fn status(&self) -> i32 {
        match self {
            CtError::OperationFailed(_) => EXIT_FAILURE,
            _ => EXIT_PARAMETER,
        }
    }

    /// stderr as the tool writes it (with the "Try ..." line for
    /// parameter problems).
    pub fn to_stderr(&self) -> String {
        let mut s = format!("{PROG}: {self}\n");
        if self.status() == EXIT_PARAMETER {
            s.push_str("Try `conntrack -h' or 'conntrack --help' for more information.\n");
        }
        s
    }
}
