use axactor::actor;

pub struct Account;

#[actor(remote, remote)]
impl Account {
    #[msg]
    fn deposit(&mut self, amount: i64) {
        let _ = amount;
    }
}

fn main() {}
