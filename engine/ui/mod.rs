//! Presentation: how the engine's records read to people, in words and (on a terminal) in
//! colour. Below the observers (exec) and the reports, which both show records; above the
//! journal, whose records it describes. Nothing here writes anywhere: callers print.

pub mod describe;
pub mod paint;
pub mod visible;
