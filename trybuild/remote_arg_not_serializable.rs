use axactor::actor;

pub struct Account;

/// Not serializable: cannot cross the wire.
pub struct Secret(u64);

#[actor(remote)]
impl Account {
    #[msg]
    fn deposit(&mut self, amount: i64, secret: Secret) {
        let _ = (amount, secret.0);
    }
}

fn main() {}
