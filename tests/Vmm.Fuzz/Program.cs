using SharpFuzz;
using Vmm.Fuzz;

// vmm-fuzz TARGET            run under afl-fuzz (input on stdin), TARGET = destination | return-path
// vmm-fuzz replay TARGET F…  run each file once without afl (a corpus check, or a crash reproduced)
// vmm-fuzz seeds DIR         write the seed corpus into DIR/destination and DIR/return-path
var targets = new Dictionary<string, Action<Stream>>
{
    ["destination"] = input => AllocationGuard.Run(DestinationTarget.Run, input),
    ["return-path"] = input => AllocationGuard.Run(ReturnPathTarget.Run, input),
};

switch (args)
{
    case ["seeds", string directory]:
        SeedCorpus.Write(directory);
        return 0;

    case ["replay", string name, .. string[] files] when targets.TryGetValue(name, out Action<Stream>? replayed):
        foreach (string file in files)
        {
            using FileStream input = File.OpenRead(file);
            replayed(input);
            Console.WriteLine($"{file}: {(name == "destination" ? DestinationTarget.Outcome : "ok")}");
        }

        Console.WriteLine($"{files.Length} inputs replayed against {name}: no crash");
        return 0;

    case [string name] when targets.TryGetValue(name, out Action<Stream>? target):
        Fuzzer.OutOfProcess.Run(target);
        return 0;

    default:
        Console.Error.WriteLine("usage: vmm-fuzz destination|return-path | replay TARGET FILE... | seeds DIR");
        return 2;
}
