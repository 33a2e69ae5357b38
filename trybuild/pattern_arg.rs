use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn add_pair(&mut self, (a, b): (i32, i32)) -> i32 {
        a + b
    }
}

fn main() {}
