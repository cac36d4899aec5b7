//! Where the driver gets the current time and its timers from, so tests
//! move time forward instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collab_core::time::{duration_ms, Timestamp};

/// Where a driver gets the current time and its timers from: the hub's
/// one source of time.
///
/// The deterministic core never calls it: the driver reads the clock and
/// passes the time in, and waits for the core's next deadline with
/// [`Clock::sleep_until`]; the hub's sweep and its store retries wait the
/// same way. Tests use [`ManualClock`], which wakes those waits when it is
/// moved, so a whole hub runs on a clock the test turns; collab-server's
/// `Hub` defaults to [`TokioClock`], which follows tokio's
/// (pausable) timer.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Waits until the clock reads `at` or later. The default waits on
    /// tokio's timer for the time left now.
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let left = at.since(self.now());
        Box::pin(tokio::time::sleep(left))
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(duration_ms(since_epoch))
    }
}

/// A clock that moves only when told to. Its sleeps end when it is moved
/// past them, whatever tokio's timer says.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
    /// Tasks sleeping on this clock, woken whenever it moves.
    sleepers: Mutex<Vec<Waker>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: AtomicU64::new(start.0),
            sleepers: Mutex::new(Vec::new()),
        }
    }

    /// Moves the clock forward by `d`, waking the sleeps that are over.
    pub fn advance(&self, d: Duration) {
        self.now.fetch_add(duration_ms(d), Ordering::SeqCst);
        self.wake();
    }

    /// Sets the clock to `t`, waking the sleeps that are over.
    pub fn set(&self, t: Timestamp) {
        self.now.store(t.0, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        let sleepers =
            std::mem::take(&mut *self.sleepers.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in sleepers {
            waker.wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(ManualSleep { clock: self, at })
    }
}

/// A sleep on a [`ManualClock`].
struct ManualSleep<'a> {
    clock: &'a ManualClock,
    at: Timestamp,
}

impl Future for ManualSleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.at {
            return Poll::Ready(());
        }
        let mut sleepers = self
            .clock
            .sleepers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !sleepers.iter().any(|w| w.will_wake(cx.waker())) {
            sleepers.push(cx.waker().clone());
        }
        drop(sleepers);
        // The clock may have moved between the check and the registration.
        if self.clock.now() >= self.at {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Wall-clock time that advances with tokio's timer.
///
/// It reads the system clock once, then adds the time tokio says has passed, so
/// under `tokio::time::pause()` the timestamps the driver hands the core move
/// exactly as far as the test advances the runtime, and the driver's sleeps agree
/// with the core's deadlines.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts following tokio's timer from the system clock's current time.
    pub fn new() -> Self {
        Self {
            base: SystemClock.now(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base.plus(self.start.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now(), Timestamp(3_000));
        assert_eq!(
            clock.now().since(Timestamp(500)),
            Duration::from_millis(2_500)
        );
        assert_eq!(Timestamp(5).since(Timestamp(9)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(clock.now().since(t0), Duration::from_secs(61));
    }
}
