// Prints what the payload received: argv after the script path, environment and cwd, as JSON.
process.stdout.write(JSON.stringify({ argv: process.argv.slice(2), env: process.env, cwd: process.cwd() }));
