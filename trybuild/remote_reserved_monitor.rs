use axactor::actor;

pub struct Account;

#[actor(remote)]
impl Account {
    #[msg]
    fn monitor(&mut self, on: bool) {
        let _ = on;
    }
}

fn main() {}
