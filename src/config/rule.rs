//! A rewrite-phase rule, the same at server and location level.

use crate::vars::condition::Condition;
use crate::vars::Template;

/// A rewrite-phase rule: nginx's `if (cond) { return ...; }`, or a bare `return`.
#[derive(Debug)]
pub struct Rule {
    /// None: always.
    pub condition: Option<Condition>,
    /// The status returned.
    pub status: u16,
    /// Body text, or the Location of a redirect.
    pub body: Option<Template>,
}
