// sonic: parse, call core, render. Every object lives in its own file.
#include "cli.hpp"

int main(int argc, char **argv)
{
	sonic::cmd::Cli cli;
	sonic::cmd::add_objects(cli);
	return cli.run(argc, argv);
}
