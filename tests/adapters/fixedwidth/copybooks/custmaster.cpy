000100******************************************************************CUSTREC
000200* CUSTOMER MASTER RECORD                                          CUSTREC
000300******************************************************************CUSTREC
000400 01  CUST-MASTER-REC.                                             CUSTREC
000500     05  CM-KEY.                                                  CUSTREC
000600         10  CM-BRANCH           PIC 9(4).                        CUSTREC
000700         10  CM-ACCT-NO          PIC 9(10).                       CUSTREC
000800     05  CM-STATUS               PIC X.                           CUSTREC
000900         88  CM-ACTIVE           VALUE 'A'.                       CUSTREC
001000         88  CM-CLOSED           VALUE 'C' 'X'                    CUSTREC
001100                                       'Z'.                       CUSTREC
001200     05  CM-BALANCE              PIC S9(11)V99 USAGE IS COMP-3.   CUSTREC
001300     05  CM-LIMIT                PIC S9(7)V99 COMP-3 VALUE ZEROES.CUSTREC
001400     05  CM-OPEN-DATE.                                            CUSTREC
001500         10  CM-OPEN-CC          PIC 99.                          CUSTREC
001600         10  CM-OPEN-YY          PIC 99.                          CUSTREC
001700         10  CM-OPEN-MM          PIC 99.                          CUSTREC
001800         10  CM-OPEN-DD          PIC 99.                          CUSTREC
001900     05  CM-OPEN-DATE-N REDEFINES CM-OPEN-DATE PIC 9(8).          CUSTREC
002000     05  CM-OPEN-DATE-X REDEFINES CM-OPEN-DATE PIC X(8).          CUSTREC
002100     05  CM-HIST-COUNT           PIC S9(4) COMP.                  CUSTREC
002200     05  CM-HISTORY OCCURS 12 TIMES                               CUSTREC
002300                    INDEXED BY CM-HX.                             CUSTREC
002400         10  CM-HIST-AMT         PIC S9(9)V99 COMP-3.             CUSTREC
002500         10  CM-HIST-TYPE        PIC X(2).                        CUSTREC
002600     05  filler                  pic x(20).                       CUSTREC
