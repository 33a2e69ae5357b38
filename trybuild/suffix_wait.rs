use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn flush_wait(&mut self) {}
}

fn main() {}
