use axactor::actor;

pub struct Counter {
    n: i64,
}

#[actor]
impl Counter {
    #[msg]
    fn get(&self) -> i64 {
        self.n
    }
}

fn main() {}
