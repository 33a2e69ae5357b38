use axactor::actor;

pub struct Account;

/// Not serializable: cannot cross the wire.
pub struct Statement {
    pub lines: Vec<String>,
}

#[actor(remote)]
impl Account {
    #[msg]
    fn statement(&mut self) -> Statement {
        Statement { lines: Vec::new() }
    }
}

fn main() {}
