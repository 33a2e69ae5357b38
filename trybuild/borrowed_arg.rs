use axactor::actor;

pub struct Greeter;

#[actor]
impl Greeter {
    #[msg]
    fn greet(&mut self, name: &str) -> usize {
        name.len()
    }
}

fn main() {}
