use axactor::actor;

pub struct Counter;

pub trait Bump {
    fn bump(&mut self);
}

#[actor]
impl Bump for Counter {
    fn bump(&mut self) {}
}

fn main() {}
