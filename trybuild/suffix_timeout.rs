use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn read_timeout(&mut self) -> u32 {
        0
    }
}

fn main() {}
