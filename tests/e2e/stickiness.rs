//! (tests arrive here)
