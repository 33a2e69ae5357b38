use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn stop(&mut self) {}
}

fn main() {}
