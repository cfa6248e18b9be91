//! A call's deadline counted in the CPU time of the thread running it, so a busy machine
//! does not make a healthy plugin time out.
//!
//! The engine's epoch advances with wall time, and a call is first allowed
//! [`FIRST_LOOK_TICKS`] ticks of it, which almost every call needs only a sliver of.
//! A call still running then is looked at: its CPU time so far counts as the whole first
//! window (an upper bound), and from then on the thread's CPU clock is read at each
//! deadline. The call is interrupted once it has used the budget, and otherwise given
//! the ticks it has left. A plugin cannot wait (see `sandbox::forbid_waiting`), so wall
//! time beyond CPU time is time the thread was not scheduled: the plugin's calls are not
//! charged for the machine's load. Reading the clock only at a deadline keeps the
//! common short call free of it.

use std::time::Duration;

use wasmtime::UpdateDeadline;

/// Epoch ticks a call runs before its CPU time is first looked at.
pub const FIRST_LOOK_TICKS: u64 = 2;

/// One call's CPU budget, looked at each time the call reaches its epoch deadline.
#[derive(Debug, Default)]
pub struct CpuDeadline {
    /// The thread's CPU time at the first look, and what the call is charged with then.
    first_look: Option<(Duration, Duration)>,
}

impl CpuDeadline {
    /// Starts a new call (before any of its deadlines).
    pub fn arm(&mut self) {
        self.first_look = None;
    }

    /// Whether to interrupt a call that reached its deadline, given the thread's CPU time
    /// `cpu_now`, the call's `budget` and the epoch's `tick`; `first_window` is what the
    /// call was first allowed.
    pub fn on_deadline(
        &mut self,
        cpu_now: Duration,
        budget: Duration,
        tick: Duration,
        first_window: Duration,
    ) -> UpdateDeadline {
        let used = match self.first_look {
            None => {
                self.first_look = Some((cpu_now, first_window));
                first_window
            }
            Some((at, charged)) => charged + cpu_now.saturating_sub(at),
        };
        match budget.checked_sub(used) {
            Some(left) if !left.is_zero() => UpdateDeadline::Continue(ticks_for(left, tick)),
            _ => UpdateDeadline::Interrupt,
        }
    }
}

/// Whole ticks covering `left` (at least one).
fn ticks_for(left: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    (left.as_nanos().div_ceil(tick) as u64).max(1)
}

/// The CPU time the calling thread has used.
#[cfg(unix)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` we pass, which we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::MAX;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Without a thread CPU clock, wall time stands in for it.
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(5);
    const BUDGET: Duration = Duration::from_millis(100);
    const FIRST: Duration = Duration::from_millis(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ticks(update: UpdateDeadline) -> Option<u64> {
        match update {
            UpdateDeadline::Continue(n) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn a_call_on_the_cpu_is_stopped_once_it_used_the_budget() {
        let mut d = CpuDeadline::default();
        d.arm();
        // First look at 10 ms: charged the whole window, 90 ms left = 18 ticks.
        assert_eq!(
            ticks(d.on_deadline(ms(1_000), BUDGET, TICK, FIRST)),
            Some(18)
        );
        // It ran the whole time: 10 + 90 = 100 ms used.
        assert_eq!(ticks(d.on_deadline(ms(1_090), BUDGET, TICK, FIRST)), None);
    }

    #[test]
    fn a_call_starved_of_cpu_keeps_its_budget() {
        let mut d = CpuDeadline::default();
        d.arm();
        assert_eq!(ticks(d.on_deadline(ms(500), BUDGET, TICK, FIRST)), Some(18));
        // 90 ms of wall time passed but the thread ran only 5 ms of it: 85 ms left.
        assert_eq!(ticks(d.on_deadline(ms(505), BUDGET, TICK, FIRST)), Some(17));
        // Still descheduled: it keeps going until the CPU it used reaches the budget.
        assert_eq!(ticks(d.on_deadline(ms(585), BUDGET, TICK, FIRST)), Some(1));
        assert_eq!(ticks(d.on_deadline(ms(590), BUDGET, TICK, FIRST)), None);
    }

    #[test]
    fn arming_starts_each_call_afresh() {
        let mut d = CpuDeadline::default();
        d.arm();
        d.on_deadline(ms(0), BUDGET, TICK, FIRST);
        assert_eq!(ticks(d.on_deadline(ms(80), BUDGET, TICK, FIRST)), Some(2));
        d.arm();
        assert_eq!(ticks(d.on_deadline(ms(80), BUDGET, TICK, FIRST)), Some(18));
    }

    #[test]
    fn a_budget_shorter_than_the_first_window_stops_at_the_first_look() {
        let mut d = CpuDeadline::default();
        d.arm();
        assert_eq!(ticks(d.on_deadline(ms(3), ms(4), TICK, FIRST)), None);
    }

    #[test]
    fn the_thread_cpu_clock_advances_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(thread_cpu_time() > before, "{x}");
    }
}
