use axactor::actor;

pub struct Counter;

#[actor(fast)]
impl Counter {
    #[msg]
    fn inc(&mut self) {}
}

fn main() {}
