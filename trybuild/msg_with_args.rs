use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg(ask)]
    fn inc(&mut self) {}
}

fn main() {}
