/*
 * Starts Kroxylicious from its library jars (Maven Central) the way its app distribution's main class,
 * io.kroxylicious.app.Kroxylicious (0.12.0, not on Maven Central), does: ConfigParser reads the YAML
 * configuration, KafkaProxy(parser, configuration, features).startup(), then block() until shutdown.
 *
 *   java -cp '<libs>/*:<classes>' Launcher CONFIG.yaml [--kek KMS_NAME:ALIAS]...
 *
 * --kek generates a 256-bit AES key-encryption key inside this JVM in the in-memory KMS instance named
 * KMS_NAME (the RecordEncryption filter's `kms: IntegrationTestingKmsService`, `kmsConfig: {name: KMS_NAME}`)
 * and gives it the alias ALIAS, before the proxy starts: the key never leaves the process (nothing on disk,
 * nothing logged). Prints "kroxylicious ready" on stdout once every gateway is bound.
 * Exit codes: 0 after a clean shutdown (SIGTERM), 2 on bad arguments, 1 when start-up fails.
 */

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import io.kroxylicious.kms.provider.kroxylicious.inmemory.InMemoryKms;
import io.kroxylicious.kms.provider.kroxylicious.inmemory.IntegrationTestingKmsService;
import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.config.Configuration;
import io.kroxylicious.proxy.internal.config.Features;

public final class Launcher {

    private Launcher() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || (args.length - 1) % 2 != 0) {
            System.err.println("usage: Launcher CONFIG.yaml [--kek KMS_NAME:ALIAS]...");
            System.exit(2);
        }
        Path configFile = Path.of(args[0]);
        List<String[]> keks = new ArrayList<>();
        for (int i = 1; i < args.length; i += 2) {
            String[] nameAlias = args[i + 1].split(":", 2);
            if (!args[i].equals("--kek") || nameAlias.length != 2 || nameAlias[0].isEmpty() || nameAlias[1].isEmpty()) {
                System.err.println("usage: Launcher CONFIG.yaml [--kek KMS_NAME:ALIAS]...");
                System.exit(2);
            }
            keks.add(nameAlias);
        }
        for (String[] nameAlias : keks) {
            IntegrationTestingKmsService service = IntegrationTestingKmsService.newInstance();
            service.initialize(new IntegrationTestingKmsService.Config(nameAlias[0]));
            InMemoryKms kms = service.buildKms();
            kms.createAlias(kms.generateKey(), nameAlias[1]);
        }
        ConfigParser parser = new ConfigParser();
        Configuration config;
        try (InputStream in = Files.newInputStream(configFile)) {
            config = parser.parseConfiguration(in);
        }
        KafkaProxy proxy = new KafkaProxy(parser, config, Features.defaultFeatures());
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                proxy.shutdown();
            }
            catch (RuntimeException e) {
                System.err.println("shutdown: " + e.getClass().getName());
            }
        }, "launcher-shutdown"));
        try {
            proxy.startup();
        }
        catch (RuntimeException e) {
            System.err.println("kroxylicious failed to start: " + e);
            System.exit(1);
        }
        System.out.println("kroxylicious ready");
        System.out.flush();
        proxy.block();
    }
}
