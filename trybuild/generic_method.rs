use axactor::actor;

pub struct Counter;

#[actor]
impl Counter {
    #[msg]
    fn show<T: std::fmt::Display + Send + 'static>(&mut self, value: T) {
        println!("{value}");
    }
}

fn main() {}
