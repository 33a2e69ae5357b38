use axactor::msg;

pub struct Counter;

impl Counter {
    #[msg]
    fn inc(&mut self) {}
}

fn main() {}
