//! Log lines a client can cause at will (a 421 per request, a malformed head, a refused
//! handshake, a slowloris timeout), rate-limited per worker so that no client can flood the
//! error log, and counted so that nothing is hidden: every refusal is counted in
//! `ringgate_refusals_total{kind}`, at most `runtime.refusal_log_per_second` lines of a kind
//! (default [`DEFAULT_BURST`]; 0: every line) are written per [`WINDOW`] on each worker, and when a window with suppressed lines ends, one summary line
//! says how many ("4,286 more like this in the last second").
//!
//! The state is this worker's own (a thread-local): no lock on the request path. A summary is
//! written when the next refusal of its kind arrives after the window, or by [`flush`], which
//! the worker calls on its periodic flush, whichever comes first.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// Lines of one kind a worker writes per window before it only counts them, unless
/// `runtime.refusal_log_per_second` says otherwise.
pub const DEFAULT_BURST: u32 = crate::config::DEFAULT_REFUSAL_LOG_PER_SECOND;

/// The window a budget covers.
pub const WINDOW: Duration = Duration::from_secs(1);

/// A kind of client-caused refusal: each has its own budget and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 421: the Host escapes the handshake's client-certificate policy.
    Misdirected,
    /// A malformed or oversized request (400, 413, 414, ...).
    BadRequest,
    /// A head or body that did not arrive in time, or a handshake that did not finish.
    Timeout,
    /// A refused or failed TLS handshake.
    Handshake,
    /// A request the authorize phase refused (400, 401, 403).
    Denied,
    /// A file that is not there or may not be read (404, 403).
    NotFound,
}

const KINDS: usize = 6;

/// Every kind, in budget order.
const ALL: [Kind; KINDS] = [
    Kind::Misdirected,
    Kind::BadRequest,
    Kind::Timeout,
    Kind::Handshake,
    Kind::Denied,
    Kind::NotFound,
];

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Misdirected => 0,
            Kind::BadRequest => 1,
            Kind::Timeout => 2,
            Kind::Handshake => 3,
            Kind::Denied => 4,
            Kind::NotFound => 5,
        }
    }

    /// The `kind` label of `ringgate_refusals_total`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Misdirected => "misdirected",
            Kind::BadRequest => "bad_request",
            Kind::Timeout => "timeout",
            Kind::Handshake => "handshake",
            Kind::Denied => "denied",
            Kind::NotFound => "not_found",
        }
    }

    /// What the summary line calls the lines it stands for.
    fn describe(self) -> &'static str {
        match self {
            Kind::Misdirected => "misdirected requests (421)",
            Kind::BadRequest => "bad requests",
            Kind::Timeout => "client timeouts",
            Kind::Handshake => "refused TLS handshakes",
            Kind::Denied => "denied requests",
            Kind::NotFound => "files not found or not readable",
        }
    }
}

/// One kind's budget in the current window.
#[derive(Clone, Copy)]
struct Budget {
    started: Option<Instant>,
    written: u32,
    suppressed: u64,
    /// The most severe level among the suppressed lines (the summary's level).
    level: log::Level,
}

impl Budget {
    const FRESH: Budget = Budget {
        started: None,
        written: 0,
        suppressed: 0,
        level: log::Level::Debug,
    };
}

thread_local! {
    static BUDGETS: RefCell<[Budget; KINDS]> = const { RefCell::new([Budget::FRESH; KINDS]) };
    /// This worker's lines per kind and window (0: no limit), from its configuration.
    static BURST: Cell<u32> = const { Cell::new(DEFAULT_BURST) };
}

/// Sets this worker's budget (`runtime.refusal_log_per_second`; 0 writes every line). The
/// worker calls it for each configuration generation it starts serving.
pub fn set_burst(lines: u32) {
    BURST.set(lines);
}

/// Counts a refusal of `kind` and says whether its line (at `level`) may be written now.
/// Use [`refusal_line!`](crate::refusal_line), which formats the line only when it is.
pub fn admit(kind: Kind, level: log::Level) -> bool {
    crate::metrics::with(|m| m.refusal(kind.label()));
    admit_at(kind, level, Instant::now())
}

fn admit_at(kind: Kind, level: log::Level, now: Instant) -> bool {
    let summary = BUDGETS.with(|b| {
        let mut budgets = b.borrow_mut();
        let budget = &mut budgets[kind.index()];
        let summary = close_window(kind, budget, now);
        if budget.started.is_none() {
            budget.started = Some(now);
        }
        let burst = BURST.get();
        if burst == 0 || budget.written < burst {
            budget.written += 1;
            (summary, true)
        } else {
            budget.suppressed += 1;
            budget.level = budget.level.min(level);
            (summary, false)
        }
    });
    let (summary, admitted) = summary;
    if let Some((level, line)) = summary {
        log::log!(level, "{line}");
    }
    admitted
}

/// Ends `budget`'s window when it is over, returning the summary line it owes.
fn close_window(kind: Kind, budget: &mut Budget, now: Instant) -> Option<(log::Level, String)> {
    let started = budget.started?;
    if now.duration_since(started) < WINDOW {
        return None;
    }
    let owed = (budget.suppressed > 0).then(|| {
        let line = format!(
            "{} more {} like this in the last {}, not logged (at most {} a second per worker, runtime.refusal_log_per_second; ringgate_refusals_total counts them all)",
            thousands(budget.suppressed),
            kind.describe(),
            seconds(now.duration_since(started)),
            BURST.get(),
        );
        (budget.level, line)
    });
    *budget = Budget::FRESH;
    owed
}

/// Writes the summary of every window that has ended with suppressed lines. The worker calls
/// it periodically, so a flood that stops is still accounted for.
pub fn flush() {
    flush_at(Instant::now());
}

fn flush_at(now: Instant) {
    let owed: Vec<(log::Level, String)> = BUDGETS.with(|b| {
        let mut budgets = b.borrow_mut();
        ALL.into_iter()
            .filter_map(|k| close_window(k, &mut budgets[k.index()], now))
            .collect()
    });
    for (level, line) in owed {
        log::log!(level, "{line}");
    }
}

/// "second" for a window of about one second, else "2.5 seconds".
fn seconds(d: Duration) -> String {
    if d < WINDOW + Duration::from_millis(500) {
        "second".to_string()
    } else {
        format!("{:.1} seconds", d.as_secs_f64())
    }
}

/// 4286 as "4,286".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes a client-caused refusal line through its kind's budget:
/// `refusal_line!(Kind::Misdirected, info, "listener={}: ...", name)`. The arguments are
/// formatted only when the line is written.
#[macro_export]
macro_rules! refusal_line {
    (@level info) => { log::Level::Info };
    (@level warn) => { log::Level::Warn };
    (@level error) => { log::Level::Error };
    ($kind:expr, $level:ident, $($arg:tt)+) => {
        if $crate::edge::refusal_log::admit($kind, $crate::refusal_line!(@level $level)) {
            log::$level!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURST: u32 = DEFAULT_BURST;

    fn reset() {
        BUDGETS.with(|b| *b.borrow_mut() = [Budget::FRESH; KINDS]);
        set_burst(DEFAULT_BURST);
    }

    #[test]
    fn a_burst_is_written_then_counted_then_summed_up() {
        reset();
        let t0 = Instant::now();
        let written = (0..10_000)
            .filter(|_| admit_at(Kind::Misdirected, log::Level::Info, t0))
            .count();
        assert_eq!(written, BURST as usize);
        let owed = BUDGETS.with(|b| {
            close_window(
                Kind::Misdirected,
                &mut b.borrow_mut()[Kind::Misdirected.index()],
                t0 + WINDOW,
            )
        });
        let (level, line) = owed.expect("a summary is owed");
        assert_eq!(level, log::Level::Info);
        assert_eq!(
            line,
            "9,990 more misdirected requests (421) like this in the last second, not logged (at most 10 a second per worker, runtime.refusal_log_per_second; ringgate_refusals_total counts them all)"
        );
        // The next window starts fresh.
        assert!(admit_at(Kind::Misdirected, log::Level::Info, t0 + WINDOW));
    }

    #[test]
    fn kinds_have_their_own_budgets_and_quiet_windows_owe_nothing() {
        reset();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(admit_at(Kind::BadRequest, log::Level::Info, t0));
        }
        assert!(!admit_at(Kind::BadRequest, log::Level::Info, t0));
        assert!(admit_at(Kind::Handshake, log::Level::Warn, t0));
        let owed = BUDGETS.with(|b| {
            let mut b = b.borrow_mut();
            (
                close_window(
                    Kind::BadRequest,
                    &mut b[Kind::BadRequest.index()],
                    t0 + WINDOW,
                ),
                close_window(
                    Kind::Handshake,
                    &mut b[Kind::Handshake.index()],
                    t0 + WINDOW,
                ),
            )
        });
        assert!(owed
            .0
            .is_some_and(|(_, l)| l.starts_with("1 more bad requests")));
        assert!(owed.1.is_none(), "nothing was suppressed");
        flush_at(t0 + WINDOW * 2);
    }

    #[test]
    fn summary_level_is_the_most_severe_suppressed() {
        reset();
        let t0 = Instant::now();
        for _ in 0..BURST {
            admit_at(Kind::Handshake, log::Level::Info, t0);
        }
        admit_at(Kind::Handshake, log::Level::Info, t0);
        admit_at(Kind::Handshake, log::Level::Warn, t0);
        let owed = BUDGETS.with(|b| {
            close_window(
                Kind::Handshake,
                &mut b.borrow_mut()[Kind::Handshake.index()],
                t0 + WINDOW,
            )
        });
        assert_eq!(owed.map(|(l, _)| l), Some(log::Level::Warn));
    }

    #[test]
    fn a_budget_of_zero_writes_every_line() {
        reset();
        set_burst(0);
        let t0 = Instant::now();
        assert!((0..1_000).all(|_| admit_at(Kind::Denied, log::Level::Warn, t0)));
        set_burst(2);
        reset_budgets_only();
        assert_eq!(
            (0..5)
                .filter(|_| admit_at(Kind::Denied, log::Level::Warn, t0))
                .count(),
            2
        );
        reset();
    }

    fn reset_budgets_only() {
        BUDGETS.with(|b| *b.borrow_mut() = [Budget::FRESH; KINDS]);
    }

    #[test]
    fn every_kind_has_its_own_budget_slot() {
        for (i, k) in ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i, "{k:?}");
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4286), "4,286");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
