//! The request mix: classes and operations, their weights, and weighted choice.

/// What a request is for: the three classes of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Read,
    Login,
    Booking,
}

/// One page or operation, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Venues,
    Days,
    Times,
    MyBookings,
    GqlAvailability,
    LoginPage,
    LoginPost,
    CodePage,
    CodePost,
    Confirm,
    BookPost,
    ChangePost,
    Done,
    GqlBook,
    GqlChange,
}

pub(super) const OPS: [Op; 15] = [
    Op::Venues,
    Op::Days,
    Op::Times,
    Op::MyBookings,
    Op::GqlAvailability,
    Op::LoginPage,
    Op::LoginPost,
    Op::CodePage,
    Op::CodePost,
    Op::Confirm,
    Op::BookPost,
    Op::ChangePost,
    Op::Done,
    Op::GqlBook,
    Op::GqlChange,
];

impl Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Venues => "GET venues",
            Op::Days => "GET venues/{v} (days)",
            Op::Times => "GET venues/{v}/{d} (times)",
            Op::MyBookings => "GET bookings",
            Op::GqlAvailability => "gql availability",
            Op::LoginPage => "GET login",
            Op::LoginPost => "POST login (code)",
            Op::CodePage => "GET code",
            Op::CodePost => "POST code (session)",
            Op::Confirm => "GET confirm",
            Op::BookPost => "POST book",
            Op::ChangePost => "POST change",
            Op::Done => "GET done",
            Op::GqlBook => "gql book",
            Op::GqlChange => "gql changeBooking",
        }
    }

    pub(super) fn class(self) -> Class {
        match self {
            Op::Venues | Op::Days | Op::Times | Op::MyBookings | Op::GqlAvailability => Class::Read,
            Op::LoginPage | Op::LoginPost | Op::CodePage | Op::CodePost => Class::Login,
            Op::Confirm
            | Op::BookPost
            | Op::ChangePost
            | Op::Done
            | Op::GqlBook
            | Op::GqlChange => Class::Booking,
        }
    }

    pub(super) fn index(self) -> usize {
        OPS.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// What an iteration does, by weight (per 10,000). A read is one request; a login is four
/// login-class requests and one read (`GET bookings` after it); a booking is, on average, 1.5 reads
/// (days and times on the site, `availability` over GraphQL) and 2 booking-class requests
/// (`confirm`, the post, `done` on the site; the mutation over GraphQL). These weights make the
/// requests ~90 % reads, ~7 % login, ~3 % booking ([`expected_shares`]).
pub(super) const CLASS_WEIGHTS: [(Class, u32); 3] = [
    (Class::Read, 9_636),
    (Class::Login, 196),
    (Class::Booking, 168),
];

/// Which read a read iteration is, by weight (per 100).
pub(super) const READ_WEIGHTS: [(Op, u32); 5] = [
    (Op::Venues, 5),
    (Op::Days, 25),
    (Op::Times, 25),
    (Op::MyBookings, 15),
    (Op::GqlAvailability, 30),
];

/// Requests per iteration of each class: (reads, login-class, booking-class).
pub(super) fn requests_of(class: Class) -> (f64, f64, f64) {
    match class {
        Class::Read => (1.0, 0.0, 0.0),
        Class::Login => (1.0, 4.0, 0.0),
        // half on the site (2 reads, 3 booking requests), half over GraphQL (1 and 1)
        Class::Booking => (1.5, 0.0, 2.0),
    }
}

/// The request shares (read, login, booking) the weights give, when every flow runs to its end.
pub(super) fn expected_shares(weights: &[(Class, u32)]) -> (f64, f64, f64) {
    let (mut r, mut l, mut b) = (0.0, 0.0, 0.0);
    for (class, w) in weights {
        let (cr, cl, cb) = requests_of(*class);
        let w = f64::from(*w);
        r += w * cr;
        l += w * cl;
        b += w * cb;
    }
    let total = r + l + b;
    (r / total, l / total, b / total)
}

/// The entry of `weights` that `roll` (0 ≤ roll < the sum of the weights) falls on.
pub(super) fn pick<T: Copy>(weights: &[(T, u32)], roll: u32) -> T {
    let mut left = roll;
    for (item, w) in weights {
        if left < *w {
            return *item;
        }
        left -= w;
    }
    weights.last().expect("weights").0
}

pub(super) fn roll<T: Copy>(weights: &[(T, u32)]) -> T {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    pick(weights, rand::random_range(0..total))
}

// Reading the pages
