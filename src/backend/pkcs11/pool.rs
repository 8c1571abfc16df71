//! A bounded pool of sessions on one token, with recovery from session loss.
//!
//! The user logs in once through an anchor session that lives as long as
//! the pool (PKCS#11 login state belongs to the application, and ends when
//! its last session closes). A leased session goes back to the pool when the
//! [`Lease`] drops, unless it was marked broken. When the token says the
//! session, the login or the key handle is gone, [`Pool::recover`] drops
//! every session of that generation, logs in again, re-finds the key and
//! the caller retries once.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use super::error::{rv_of, Error};
use super::module::{initialize, login};
use super::KeySelector;

/// Pool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most sessions open at once (besides the anchor).
    pub max_sessions: usize,
    /// How long a call waits for a free session before failing.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_sessions: 8,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

struct State {
    idle: Vec<Session>,
    /// Sessions of the current generation, idle or leased.
    open: usize,
    generation: u64,
    anchor: Option<Session>,
    key: ObjectHandle,
    /// Times the pool recovered (for tests and metrics).
    recoveries: u64,
}

/// Sessions on one token for one key.
pub(crate) struct Pool {
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    pin: SecretString,
    selector: KeySelector,
    options: PoolOptions,
    state: Mutex<State>,
    freed: Condvar,
}

/// A session taken from the pool, with the key handle valid for it.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    pub(crate) key: ObjectHandle,
    generation: u64,
    broken: bool,
}

impl Lease<'_> {
    pub(crate) fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Marks the session unusable: it is closed instead of returned.
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if state.generation == self.generation {
            if self.broken {
                state.open -= 1;
                drop(state);
                drop(session);
            } else {
                state.idle.push(session);
            }
        } else {
            // From before a recovery: not counted any more.
            drop(state);
            drop(session);
        }
        self.pool.freed.notify_one();
    }
}

/// Errors after which the pool recovers and the operation is retried once.
pub(crate) fn is_recoverable(e: &CkError) -> bool {
    matches!(
        rv_of(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::CryptokiNotInitialized
        )
    )
}

/// Why a lease could not be had.
pub(crate) enum AcquireError {
    /// The module refused a new session.
    Open(CkError),
    /// The pool stayed full.
    Timeout(Error),
}

impl Pool {
    /// Opens the anchor session, logs in and finds the key.
    pub(crate) fn new(
        ctx: Pkcs11,
        slot: Slot,
        token: String,
        pin: SecretString,
        selector: KeySelector,
        options: PoolOptions,
    ) -> Result<Self, Error> {
        let (anchor, key) = Self::connect(&ctx, slot, &token, &pin, &selector)?;
        Ok(Self {
            ctx,
            slot,
            token,
            pin,
            selector,
            options: PoolOptions {
                max_sessions: options.max_sessions.max(1),
                ..options
            },
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                generation: 0,
                anchor: Some(anchor),
                key,
                recoveries: 0,
            }),
            freed: Condvar::new(),
        })
    }

    fn connect(
        ctx: &Pkcs11,
        slot: Slot,
        token: &str,
        pin: &SecretString,
        selector: &KeySelector,
    ) -> Result<(Session, ObjectHandle), Error> {
        let anchor = ctx
            .open_ro_session(slot)
            .map_err(Error::op("opening a session"))?;
        login(&anchor, pin, token)?;
        let key = selector.find_one(&anchor, token)?;
        Ok((anchor, key))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub(crate) fn recoveries(&self) -> u64 {
        self.lock().recoveries
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Takes an idle session, opens one if under the limit, or waits.
    pub(crate) fn acquire(&self) -> Result<Lease<'_>, AcquireError> {
        let deadline = Instant::now() + self.options.acquire_timeout;
        let mut state = self.lock();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(self.lease(session, &state));
            }
            if state.open < self.options.max_sessions {
                let session = self
                    .ctx
                    .open_ro_session(self.slot)
                    .map_err(AcquireError::Open)?;
                state.open += 1;
                return Ok(self.lease(session, &state));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AcquireError::Timeout(Error::PoolTimeout(
                    self.options.acquire_timeout,
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lease(&self, session: Session, state: &State) -> Lease<'_> {
        Lease {
            pool: self,
            session: Some(session),
            key: state.key,
            generation: state.generation,
            broken: false,
        }
    }

    /// Starts a new generation unless another thread already did since
    /// `seen`: drops idle sessions and the anchor, re-initializes the module
    /// if it was finalized, logs in again and re-finds the key.
    pub(crate) fn recover(&self, seen: u64) -> Result<(), Error> {
        let mut state = self.lock();
        if state.generation != seen {
            return Ok(());
        }
        state.generation += 1;
        state.recoveries += 1;
        state.idle.clear();
        state.open = 0;
        state.anchor = None;
        initialize(&self.ctx).map_err(Error::op("re-initializing the module"))?;
        let (anchor, key) =
            Self::connect(&self.ctx, self.slot, &self.token, &self.pin, &self.selector)?;
        state.anchor = Some(anchor);
        state.key = key;
        drop(state);
        self.freed.notify_all();
        Ok(())
    }

    /// Runs `op` on a pooled session, recovering and retrying once when the
    /// session, login or key handle turned out to be gone. `keep` says which
    /// failures leave the session healthy (e.g. a signature mismatch).
    pub(crate) fn run<T>(
        &self,
        what: &'static str,
        keep: impl Fn(&CkError) -> bool,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<Result<T, CkError>, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seen = self.generation();
            let mut lease = match self.acquire() {
                Ok(lease) => lease,
                Err(AcquireError::Timeout(e)) => return Err(e),
                Err(AcquireError::Open(e)) if attempt == 1 && is_recoverable(&e) => {
                    self.recover(seen)?;
                    continue;
                }
                Err(AcquireError::Open(e)) => return Err(Error::op(what)(e)),
            };
            let Some(session) = lease.session() else {
                return Err(Error::op(what)(CkError::InvalidValue));
            };
            match op(session, lease.key) {
                Ok(v) => return Ok(Ok(v)),
                Err(e) if keep(&e) => return Ok(Err(e)),
                Err(e) => {
                    lease.discard();
                    let generation = lease.generation;
                    drop(lease);
                    if attempt == 1 && is_recoverable(&e) {
                        self.recover(generation)?;
                        continue;
                    }
                    return Ok(Err(e));
                }
            }
        }
    }
}
