//! Each spawned database's share of its server's connection cap, following its demand.
//!
//! Pure bookkeeping, with no I/O and no clock of its own (every call is told `now`), so that
//! every rule below is unit-tested; [`crate::backend::pool`] holds one [`ShareTable`] per
//! server and acts on what it says (lets a call take a connection, keeps or closes a released
//! one, closes idle ones).
//!
//! # Demand
//!
//! A database's demand is its calls holding a connection plus those waiting for one. The
//! estimate the allocator reads ([`Demand`]) rises at once with it, so a busy database grows
//! without delay, and falls by half every `half_life` once it drops, so a pause of a few
//! milliseconds between two queries does not hand its connections away (and back, reconnecting).
//!
//! # Allocation
//!
//! [`allocate`] splits the cap (the server's data-plane connections) between the open
//! databases, in two passes over them in priority order (databases that wait with nothing
//! first, longest waiting first; then by demand, highest first):
//!
//! 1. every database gets its minimum, as far as the cap allows;
//! 2. one connection at a time, round by round, each database below its target (its demand,
//!    within its minimum and maximum) gets one more, until the cap or every target is reached.
//!
//! So the sum of the shares never exceeds the cap; a database gets its minimum whenever the
//! minimums fit; equally busy databases get shares that differ by at most one; a database
//! whose demand is lower than an even split gets all of it and the rest goes to the busier
//! ones (max-min fairness), up to their maximum; an idle database drops to its minimum.
//!
//! # No starvation
//!
//! A call of a database at its share waits and counts towards its demand, and the shares are
//! recomputed at once ([`ShareTable::try_take`]). A database that waits holding no connection
//! comes first in both passes, so it gets one as long as fewer databases than the cap are
//! starved at the same time (else the longest waiting ones first). Connections that other
//! databases hold beyond their new shares are closed, not kept, when their calls end
//! ([`ShareTable::release`]), which frees a slot under the server's cap: the wait is bounded by
//! the running statements (themselves bounded by the statement timeout).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::time::Instant;

/// How shares are bounded and how fast they follow a drop in demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareSettings {
    /// Connections each open database keeps as its share even when idle (when the cap allows).
    pub min: usize,
    /// Connections one database may hold at most.
    pub max: usize,
    /// The demand estimate halves every this long once demand drops.
    pub half_life: Duration,
}

/// A smoothed demand: rises at once, decays exponentially.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    level: f64,
    at: Option<Instant>,
}

impl Demand {
    /// The estimate at `now`.
    pub fn estimate(&self, now: Instant, half_life: Duration) -> f64 {
        let Some(at) = self.at else {
            return 0.0;
        };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        let half = half_life.as_secs_f64();
        if half <= 0.0 {
            return 0.0;
        }
        self.level * 0.5f64.powf(elapsed / half)
    }

    /// Records the demand `current` seen at `now`.
    pub fn observe(&mut self, now: Instant, current: usize, half_life: Duration) {
        self.level = self.estimate(now, half_life).max(current as f64);
        self.at = Some(now);
    }

    /// The connections this demand asks for at `now`: at least `current`, else the estimate
    /// rounded (so it reaches zero once below a half).
    pub fn wanted(&self, now: Instant, current: usize, half_life: Duration) -> usize {
        let smoothed = self.estimate(now, half_life).round() as usize;
        smoothed.max(current)
    }
}

/// What one database asks of [`allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// Its minimum share.
    pub min: usize,
    /// Its maximum share.
    pub max: usize,
    /// Connections its demand asks for.
    pub demand: usize,
    /// Since when it has waited holding no connection, if it does.
    pub starved_since: Option<Instant>,
}

/// Splits `cap` connections between the databases of `wants` (see the module docs); the
/// shares come back in the order of `wants`.
pub fn allocate(cap: usize, wants: &[Want]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..wants.len()).collect();
    // Starved ones first (earliest first: `None` sorts before `Some`, so invert), then the
    // busiest, then in a fixed order so that the outcome is deterministic.
    order.sort_by(|&a, &b| {
        let (wa, wb) = (&wants[a], &wants[b]);
        let starved = match (wa.starved_since, wb.starved_since) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        starved.then(wb.demand.cmp(&wa.demand)).then(a.cmp(&b))
    });
    let mut shares = vec![0usize; wants.len()];
    let mut left = cap;
    for &i in &order {
        let w = &wants[i];
        let give = w.min.min(w.max).min(left);
        shares[i] = give;
        left -= give;
    }
    loop {
        let mut gave = false;
        for &i in &order {
            if left == 0 {
                return shares;
            }
            let w = &wants[i];
            let target = w.demand.clamp(w.min.min(w.max), w.max);
            if shares[i] < target {
                shares[i] += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            return shares;
        }
    }
}

/// Identifies an open database in a [`ShareTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(u64);

/// One database's share and connections, as [`ShareTable::stats`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStats {
    /// The database's name.
    pub database: Arc<str>,
    /// Connections it may hold now.
    pub share: usize,
    /// Its connections lent to calls.
    pub in_use: usize,
    /// Its connections kept open, unused.
    pub idle: usize,
    /// Its calls waiting for a connection.
    pub waiters: usize,
    /// Its minimum share.
    pub min: usize,
    /// Its maximum share.
    pub max: usize,
}

#[derive(Debug)]
struct Account {
    database: Arc<str>,
    share: usize,
    in_use: usize,
    idle: usize,
    waiters: usize,
    demand: Demand,
    starved_since: Option<Instant>,
}

impl Account {
    fn current(&self) -> usize {
        self.in_use + self.waiters
    }
}

/// The shares of one server's open databases.
#[derive(Debug)]
pub struct ShareTable {
    cap: usize,
    settings: ShareSettings,
    accounts: BTreeMap<AccountId, Account>,
    next: u64,
}

impl ShareTable {
    /// No databases yet, `cap` connections to share.
    pub fn new(cap: usize, settings: ShareSettings) -> Self {
        let settings = ShareSettings {
            max: settings.max.clamp(1, cap.max(1)),
            min: settings.min.min(settings.max).min(cap),
            ..settings
        };
        Self {
            cap,
            settings,
            accounts: BTreeMap::new(),
            next: 0,
        }
    }

    /// Shares `cap` connections from now on (the gateway's share of the server's cap changed);
    /// the next [`rebalance`](Self::rebalance) splits them.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// The bounds in force (the maximum within the cap, the minimum within the maximum).
    pub fn settings(&self) -> ShareSettings {
        self.settings
    }

    /// A database opens: it gets its minimum if the cap allows.
    pub fn open(&mut self, database: Arc<str>, now: Instant) -> AccountId {
        let id = AccountId(self.next);
        self.next += 1;
        self.accounts.insert(
            id,
            Account {
                database,
                share: 0,
                in_use: 0,
                idle: 0,
                waiters: 0,
                demand: Demand::default(),
                starved_since: None,
            },
        );
        self.rebalance(now);
        id
    }

    /// A database closes; its share goes to the others.
    pub fn close(&mut self, id: AccountId, now: Instant) {
        if self.accounts.remove(&id).is_some() {
            self.rebalance(now);
        }
    }

    /// A call of `id` asks for a connection. Within its share it takes one (true). Otherwise it
    /// counts as waiting (`waiting` set; call again after a release or a rebalance, or
    /// [`Self::give_up`]), and the shares are recomputed at once with its demand, which may
    /// grant it one (true).
    pub fn try_take(&mut self, id: AccountId, now: Instant, waiting: &mut bool) -> bool {
        let half_life = self.settings.half_life;
        let Some(a) = self.accounts.get_mut(&id) else {
            return false;
        };
        if !*waiting {
            a.waiters += 1;
            *waiting = true;
        }
        a.demand.observe(now, a.current(), half_life);
        if a.in_use >= a.share {
            if a.in_use == 0 && a.starved_since.is_none() {
                a.starved_since = Some(now);
            }
            self.rebalance(now);
        }
        let Some(a) = self.accounts.get_mut(&id) else {
            return false;
        };
        if a.in_use < a.share {
            a.waiters -= 1;
            *waiting = false;
            a.in_use += 1;
            a.starved_since = None;
            return true;
        }
        false
    }

    /// A waiting call of `id` stops waiting (its deadline passed, it was cancelled).
    pub fn give_up(&mut self, id: AccountId, now: Instant) {
        let half_life = self.settings.half_life;
        if let Some(a) = self.accounts.get_mut(&id) {
            a.waiters = a.waiters.saturating_sub(1);
            if a.waiters == 0 {
                a.starved_since = None;
            }
            a.demand.observe(now, a.current(), half_life);
        }
    }

    /// A call of `id` hands its connection back. True: it may be kept idle (the database's
    /// open connections stay within its share); false: close it, its slot is someone else's.
    pub fn release(&mut self, id: AccountId, now: Instant) -> bool {
        let half_life = self.settings.half_life;
        let Some(a) = self.accounts.get_mut(&id) else {
            return false;
        };
        a.in_use = a.in_use.saturating_sub(1);
        a.demand.observe(now, a.current(), half_life);
        a.in_use + a.idle < a.share
    }

    /// One more idle connection of `id`.
    pub fn parked(&mut self, id: AccountId) {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.idle += 1;
        }
    }

    /// One idle connection of `id` fewer (taken for a call, or closed).
    pub fn unparked(&mut self, id: AccountId) {
        if let Some(a) = self.accounts.get_mut(&id) {
            a.idle = a.idle.saturating_sub(1);
        }
    }

    /// Recomputes every share from the demands at `now`. Returns, per database, how many of
    /// its idle connections to close, so that its open connections fit its new share again.
    pub fn rebalance(&mut self, now: Instant) -> Vec<(AccountId, usize)> {
        let s = self.settings;
        let wants: Vec<Want> = self
            .accounts
            .values()
            .map(|a| Want {
                min: s.min,
                max: s.max,
                demand: a.demand.wanted(now, a.current(), s.half_life),
                starved_since: a.starved_since,
            })
            .collect();
        let shares = allocate(self.cap, &wants);
        let mut close = Vec::new();
        for ((id, a), share) in self.accounts.iter_mut().zip(shares) {
            a.share = share;
            let excess = (a.in_use + a.idle).saturating_sub(share).min(a.idle);
            if excess > 0 {
                close.push((*id, excess));
            }
        }
        close
    }

    /// Every open database's share and connections, by name.
    pub fn stats(&self) -> Vec<ShareStats> {
        let mut out: Vec<ShareStats> = self
            .accounts
            .values()
            .map(|a| ShareStats {
                database: Arc::clone(&a.database),
                share: a.share,
                in_use: a.in_use,
                idle: a.idle,
                waiters: a.waiters,
                min: self.settings.min,
                max: self.settings.max,
            })
            .collect();
        out.sort_by(|a, b| a.database.cmp(&b.database));
        out
    }

    /// The share of `id` now.
    pub fn share(&self, id: AccountId) -> usize {
        self.accounts.get(&id).map_or(0, |a| a.share)
    }

    /// The name of `id`.
    pub fn database(&self, id: AccountId) -> Option<Arc<str>> {
        self.accounts.get(&id).map(|a| Arc::clone(&a.database))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn want(min: usize, max: usize, demand: usize) -> Want {
        Want {
            min,
            max,
            demand,
            starved_since: None,
        }
    }

    fn settings(min: usize, max: usize) -> ShareSettings {
        ShareSettings {
            min,
            max,
            half_life: SEC,
        }
    }

    /// Takes `n` connections for `id`, which must all be granted.
    fn take(t: &mut ShareTable, id: AccountId, now: Instant, n: usize) {
        for _ in 0..n {
            let mut waiting = false;
            assert!(t.try_take(id, now, &mut waiting), "a take was refused");
        }
    }

    #[test]
    fn the_shares_never_sum_above_the_cap() {
        for cap in 0..12 {
            for min in 0..4 {
                for max in 1..8 {
                    for demands in [[0, 0, 0], [9, 9, 9], [1, 5, 0], [7, 0, 3], [2, 2, 2]] {
                        let wants: Vec<Want> = demands.iter().map(|&d| want(min, max, d)).collect();
                        let shares = allocate(cap, &wants);
                        assert!(
                            shares.iter().sum::<usize>() <= cap,
                            "cap {cap}, min {min}, max {max}, demands {demands:?}: {shares:?}"
                        );
                        assert!(shares.iter().all(|&s| s <= max), "{shares:?} above {max}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_database_gets_its_minimum_when_the_minimums_fit() {
        // Three databases with minimum 2 under a cap of 6: all minimums fit, the busy one
        // cannot take them away.
        let shares = allocate(6, &[want(2, 6, 6), want(2, 6, 0), want(2, 6, 0)]);
        assert_eq!(shares, vec![2, 2, 2]);
        // Under a cap of 5 they do not all fit: the busy one gets its minimum first.
        let shares = allocate(5, &[want(2, 6, 0), want(2, 6, 0), want(2, 6, 6)]);
        assert_eq!(shares[2], 2);
        assert_eq!(shares.iter().sum::<usize>(), 5);
    }

    #[test]
    fn a_busy_database_grows_past_an_even_split_up_to_its_maximum() {
        // Cap 8 between two databases: an even split is 4. The busy one gets 7 (its maximum),
        // the idle one keeps its minimum of 1.
        let shares = allocate(8, &[want(1, 7, 20), want(1, 7, 0)]);
        assert_eq!(shares, vec![7, 1]);
        // Without a maximum in the way it takes everything but the other's minimum.
        let shares = allocate(8, &[want(1, 8, 20), want(1, 8, 0)]);
        assert_eq!(shares, vec![7, 1]);
    }

    #[test]
    fn equally_busy_databases_get_shares_within_one_of_each_other() {
        for cap in 1..20 {
            for n in 1..6 {
                let wants = vec![want(0, 50, 50); n];
                let shares = allocate(cap, &wants);
                let lo = shares.iter().min().expect("n > 0");
                let hi = shares.iter().max().expect("n > 0");
                assert!(hi - lo <= 1, "cap {cap}, {n} databases: {shares:?}");
                assert_eq!(shares.iter().sum::<usize>(), cap.min(50 * n));
            }
        }
    }

    #[test]
    fn a_light_database_gets_its_whole_demand_and_the_rest_goes_to_the_busy_one() {
        let shares = allocate(10, &[want(0, 10, 2), want(0, 10, 30)]);
        assert_eq!(shares, vec![2, 8]);
    }

    #[test]
    fn a_starved_database_comes_first_even_when_others_are_busier() {
        let t0 = Instant::now();
        let mut wants = vec![want(0, 4, 4), want(0, 4, 4), want(0, 4, 1)];
        wants[2].starved_since = Some(t0);
        let shares = allocate(2, &wants);
        assert_eq!(shares[2], 1, "{shares:?}");
        // With more starved databases than the cap, the longest waiting ones come first.
        let mut wants = vec![want(0, 4, 1); 3];
        wants[0].starved_since = Some(t0 + SEC);
        wants[1].starved_since = Some(t0);
        wants[2].starved_since = Some(t0 + 2 * SEC);
        assert_eq!(allocate(2, &wants), vec![1, 1, 0]);
    }

    #[test]
    fn demand_rises_at_once_and_halves_every_half_life() {
        let t0 = Instant::now();
        let mut d = Demand::default();
        d.observe(t0, 8, SEC);
        assert_eq!(d.wanted(t0, 0, SEC), 8);
        assert_eq!(d.wanted(t0 + SEC, 0, SEC), 4);
        assert_eq!(d.wanted(t0 + 2 * SEC, 0, SEC), 2);
        // What holds connections now counts whatever the estimate says.
        assert_eq!(d.wanted(t0 + 2 * SEC, 3, SEC), 3);
        // Below a half it is nothing.
        assert_eq!(d.wanted(t0 + 5 * SEC, 0, SEC), 0);
        d.observe(t0 + 5 * SEC, 6, SEC);
        assert_eq!(d.wanted(t0 + 5 * SEC, 0, SEC), 6);
    }

    #[test]
    fn a_busy_database_grows_then_decays_to_its_minimum_and_closes_idle_connections() {
        let t0 = Instant::now();
        let mut t = ShareTable::new(8, settings(1, 7));
        let busy = t.open("busy".into(), t0);
        let idle = t.open("idle".into(), t0);
        assert_eq!((t.share(busy), t.share(idle)), (1, 1));
        take(&mut t, busy, t0, 7);
        assert_eq!((t.share(busy), t.share(idle)), (7, 1));
        // An eighth call waits: the other's minimum is not given away.
        let mut waiting = false;
        assert!(!t.try_take(busy, t0, &mut waiting));
        assert!(waiting);
        t.give_up(busy, t0);
        // The calls end: the connections are kept idle, within the share.
        for _ in 0..7 {
            assert!(t.release(busy, t0));
            t.parked(busy);
        }
        assert!(t.rebalance(t0).is_empty());
        // The demand (8: seven in use and one waiting) halves every second: after 2 s the share is 2 (7/4 rounded), 5 idle
        // connections must go; after 4 s it is back to the minimum.
        assert_eq!(t.rebalance(t0 + 2 * SEC), vec![(busy, 5)]);
        for _ in 0..5 {
            t.unparked(busy);
        }
        assert_eq!(t.share(busy), 2);
        assert_eq!(t.rebalance(t0 + 4 * SEC), vec![(busy, 1)]);
        assert_eq!(t.share(busy), 1);
        let stats = t.stats();
        assert_eq!(stats[0].database.as_ref(), "busy");
        assert_eq!((stats[0].share, stats[0].idle, stats[0].in_use), (1, 2, 0));
    }

    #[test]
    fn a_connection_released_above_a_shrunk_share_is_closed_for_the_waiting_database() {
        let t0 = Instant::now();
        let mut t = ShareTable::new(4, settings(0, 4));
        let busy = t.open("busy".into(), t0);
        let late = t.open("late".into(), t0);
        take(&mut t, busy, t0, 4);
        assert_eq!(t.share(busy), 4);
        // The other database asks: it waits holding nothing, so the busy one's share shrinks
        // at once and the other's grows, though every connection is still in use.
        let mut waiting = false;
        assert!(t.try_take(late, t0, &mut waiting));
        assert_eq!((t.share(busy), t.share(late)), (3, 1));
        // The busy one's next released connection is closed (it holds 4 of its 3).
        assert!(!t.release(busy, t0));
        // The one after that fits its share again.
        assert!(t.release(busy, t0));
    }

    #[test]
    fn a_starved_database_is_granted_a_slot_within_one_release() {
        // Cap 3, three busy databases holding everything (one wanting more); a fourth asks.
        // Its share is granted at once, one busy database's share drops to zero, and the
        // connection that one hands back is closed, freeing the slot under the cap.
        let t0 = Instant::now();
        let mut t = ShareTable::new(3, settings(0, 3));
        let busy: Vec<AccountId> = (0..3).map(|i| t.open(format!("b{i}").into(), t0)).collect();
        for &b in &busy {
            take(&mut t, b, t0, 1);
        }
        let mut more = false;
        assert!(!t.try_take(busy[0], t0, &mut more));
        let late = t.open("late".into(), t0);
        let mut waiting = false;
        assert!(t.try_take(late, t0 + SEC, &mut waiting));
        let shares: Vec<usize> = busy.iter().map(|&b| t.share(b)).collect();
        assert_eq!(shares.iter().sum::<usize>() + t.share(late), 3);
        let evicted: Vec<AccountId> = busy.iter().copied().filter(|&b| t.share(b) == 0).collect();
        assert_eq!(evicted.len(), 1, "{shares:?}");
        assert!(!t.release(evicted[0], t0 + SEC));
    }

    #[test]
    fn closing_a_database_hands_its_share_to_the_others() {
        let t0 = Instant::now();
        let mut t = ShareTable::new(4, settings(2, 4));
        let a = t.open("a".into(), t0);
        let b = t.open("b".into(), t0);
        take(&mut t, a, t0, 2);
        let mut waiting = false;
        assert!(!t.try_take(a, t0, &mut waiting));
        t.close(b, t0);
        assert_eq!(t.share(a), 3);
        assert!(t.try_take(a, t0, &mut waiting));
    }

    #[test]
    fn settings_are_kept_within_the_cap() {
        let t = ShareTable::new(5, settings(9, 9));
        assert_eq!(t.settings().max, 5);
        assert_eq!(t.settings().min, 5);
    }
}
