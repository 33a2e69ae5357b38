use axactor::actor;

pub struct Account;

#[actor(remote)]
impl Account {
    #[msg]
    fn key(&mut self) -> String {
        String::new()
    }
}

fn main() {}
