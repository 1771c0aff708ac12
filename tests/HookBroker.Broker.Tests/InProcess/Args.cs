using System.Text.Json;
using Google.Protobuf.WellKnownTypes;

namespace HookBroker.Broker.Tests.InProcess;

/// <summary>Builds args structs from anonymous objects (through JSON, as a client would send them).</summary>
public static class Args
{
    public static Struct Of(object? args) =>
        args is null ? new Struct() : Struct.Parser.ParseJson(JsonSerializer.Serialize(args));
}
