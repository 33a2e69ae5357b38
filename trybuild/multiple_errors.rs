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

    #[msg]
    fn pid(&mut self) -> u64 {
        0
    }

    #[msg]
    fn inc(&mut self) {
        self.n += 1;
    }
}

fn main() {}
