use axactor::actor;

pub struct Counter;

#[actor(remote)]
impl Counter {
    #[msg]
    fn inc(&mut self) {}
}

fn main() {}
